/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only */
/*
 * The maps shared by the fast-path program and rtpmesh-fastpath.
 *
 * relay/fastpath/src/layout.rs mirrors these structs field for field
 * (#[repr(C)], with size and offset assertions); change both together.
 * Addresses and ports are in network byte order, as they sit in the packet.
 */
#ifndef RTPMESH_FASTPATH_H
#define RTPMESH_FASTPATH_H

#include <linux/types.h>

/* The key of `routes`: where a datagram is addressed, i.e. one of the
 * relay's media sockets. */
struct fp_key {
	__u32 addr;
	__u16 port;
	__u16 pad;
};

/* fp_route.flags */
#define FP_CARRIES_RTP  0x1 /* the socket carries RTP */
#define FP_CARRIES_RTCP 0x2 /* ... RTCP (both: RFC 5761 mux) */
#define FP_SOURCE_LEARN  0x4 /* other sources go up to the socket */
#define FP_SOURCE_STRICT 0x8 /* other sources are dropped and counted */
#define FP_DELIVER_LOCAL 0x10 /* `to` is this host's: rewrite and pass up */
#define FP_HAVE_L2       0x20 /* smac/dmac are the next hop's (XDP needs them) */

/* What to do with a datagram for one media socket: send it out of
 * another of the relay's sockets (`from`) to the other party (`to`). */
struct fp_route {
	__u32 expect_addr; /* the latched source (with FP_SOURCE_*) */
	__u16 expect_port;
	__u16 flags;
	__u32 from_addr;
	__u16 from_port;
	__u16 pad1;
	__u32 to_addr;
	__u16 to_port;
	__u16 pad2;
	__u32 stats;      /* index in `stats` */
	__u32 clock_rate; /* RTP clock of the stream, for jitter */
	__u64 epoch_ns;   /* CLOCK_MONOTONIC ns of the media clock's 0 */
	__u32 oif;        /* the interface `to` is reached through */
	__u8 smac[6];     /* with FP_HAVE_L2: oif's address */
	__u8 dmac[6];     /* with FP_HAVE_L2: the next hop's */
};

/* Counters and RFC 3550 receiver state of one route; the relay reads them
 * through a shared mapping of the array. The receiver state mirrors
 * rtpmesh_flow::stats::ReceiverStats and is handed over both ways. */
struct fp_stats {
	__u64 rtp_packets;
	__u64 rtp_bytes;
	__u64 rtcp_packets;
	__u64 rtcp_bytes;
	__u64 strict_drops;
	__u64 last_ns; /* CLOCK_MONOTONIC ns of the last packet */
	__u64 received;
	__u64 jitter; /* x16, A.8 fixed point */
	__u32 ssrc;
	__u32 cycles;
	__u32 base_seq;
	__u32 bad_seq;
	__u32 transit;
	__u16 max_seq;
	__u8 has_ssrc;
	__u8 has_transit;
};

/* Indices of `totals`, a per-CPU array of why datagrams went up to the
 * sockets or were forwarded, for diagnosis. */
enum fp_total {
	FP_FORWARDED = 0,
	FP_LOCAL,        /* forwarded to a local address (passed up rewritten) */
	FP_NO_ROUTE,     /* not for a fast-path socket */
	FP_NOT_MEDIA,    /* not something the program parses: up as is */
	FP_FOREIGN,      /* another source under learning: up as is */
	FP_NO_NEIGH,     /* no neighbour entry yet: up as is */
	FP_STRICT_DROP,
	FP_TOTALS,
};

#endif
