// SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-only
/*
 * rtpmesh's in-kernel fast path: forwards datagrams of latched media
 * streams between the relay's sockets and the parties without waking the
 * relay, and keeps the counters and RFC 3550 receiver state it would have
 * kept. Everything it does not know or cannot judge goes up to the sockets
 * unchanged (XDP_PASS / TC_ACT_UNSPEC), where the relay handles it as always.
 *
 * Two entry points share the work: `fastpath_xdp` (native or generic XDP)
 * and `fastpath_tc` (clsact ingress). They differ only in how they fix the
 * checksums (TC's helpers understand partially checksummed packets from
 * local senders; XDP assumes full checksums as a NIC delivers them) and in
 * how they send (XDP_TX / bpf_redirect with the next hop's MACs, or
 * bpf_redirect_neigh).
 *
 * Built by scripts/build-bpf.sh with Debian's clang; the object is
 * committed beside this file (see relay/fastpath/README.md for why).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "fastpath.h"

char LICENSE[] SEC("license") = "Dual Apache-2.0/GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct fp_key);
	__type(value, struct fp_route);
} routes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__uint(map_flags, BPF_F_MMAPABLE);
	__type(key, __u32);
	__type(value, struct fp_stats);
} stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FP_TOTALS);
	__type(key, __u32);
	__type(value, __u64);
} totals SEC(".maps");

#define RTP_SEQ_MOD (1U << 16)
#define MAX_DROPOUT 3000
#define MAX_MISORDER 100
#define MAX_UDP_PAYLOAD 9000
#define MAX_RTCP_PARTS 16

enum kind { NOT_MEDIA = 0, RTP = 1, RTCP = 2 };

static __always_inline void count(__u32 what)
{
	__u64 *n = bpf_map_lookup_elem(&totals, &what);

	if (n)
		*n += 1;
}

/* The headers of a UDP/IPv4 datagram in an Ethernet frame. */
struct frame {
	struct ethhdr *eth;
	struct iphdr *ip;
	struct udphdr *udp;
	__u8 *payload;
	__u32 len; /* UDP payload length */
};

static __always_inline int parse_frame(void *data, void *data_end, struct frame *f)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;
	struct udphdr *udp;
	__u32 ulen;

	if ((void *)(eth + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return 0;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return 0;
	/* Options and fragments are rare on media: the sockets take them. */
	if (ip->version != 4 || ip->ihl != 5 || ip->protocol != IPPROTO_UDP ||
	    (ip->frag_off & bpf_htons(0x3fff)))
		return 0;
	udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > data_end)
		return 0;
	ulen = bpf_ntohs(udp->len);
	if (ulen < sizeof(*udp) || ulen > MAX_UDP_PAYLOAD ||
	    bpf_ntohs(ip->tot_len) < sizeof(*ip) + ulen || (void *)udp + ulen > data_end)
		return 0;
	f->eth = eth;
	f->ip = ip;
	f->udp = udp;
	f->payload = (void *)(udp + 1);
	f->len = ulen - sizeof(*udp);
	return 1;
}

/* A subset of what rtpmesh_flow::rtp::RtpHeader::parse accepts: anything
 * in doubt (padding) is left to the sockets. */
static __always_inline int is_rtp(__u8 *p, __u32 len, void *data_end)
{
	__u32 hl;
	__u8 b0;

	if (len < 12 || p + 12 > (__u8 *)data_end)
		return 0;
	b0 = p[0];
	if ((b0 >> 6) != 2 || (b0 & 0x20))
		return 0;
	hl = 12 + 4 * (b0 & 0x0f);
	if (b0 & 0x10) {
		__u8 *x = p + hl;

		if (hl + 4 > len || x + 4 > (__u8 *)data_end)
			return 0;
		hl += 4 + 4 * (((__u32)x[2] << 8) | x[3]);
	}
	return hl <= len;
}

/* A subset of what RtcpHeader::parse accepts: a compound packet whose
 * parts' lengths cover the datagram exactly, no padding. */
static __always_inline int is_rtcp(__u8 *p, __u32 len, void *data_end)
{
	__u32 off = 0;

	for (int i = 0; i < MAX_RTCP_PARTS; i++) {
		__u8 *h;
		__u32 l;

		if (off == len)
			return i > 0;
		if (off > MAX_UDP_PAYLOAD || len - off < 4)
			return 0;
		/* A no-op mask (off <= MAX_UDP_PAYLOAD) that bounds the
		 * offset for the verifier; the empty asm keeps clang from
		 * proving it a no-op and dropping it. */
		asm volatile("" : "+r"(off));
		h = p + (off & 0x3fff);
		if (h + 4 > (__u8 *)data_end)
			return 0;
		if ((h[0] >> 6) != 2 || (h[0] & 0x20))
			return 0;
		l = ((((__u32)h[2] << 8) | h[3]) + 1) * 4;
		if (l > len - off)
			return 0;
		if (i == 0 && (l < 8 || h[1] < 192 || h[1] > 223))
			return 0;
		off += l;
	}
	return 0;
}

static __always_inline enum kind classify(__u16 flags, __u8 *p, __u32 len, void *data_end)
{
	int rtcp;

	if ((flags & (FP_CARRIES_RTP | FP_CARRIES_RTCP)) == (FP_CARRIES_RTP | FP_CARRIES_RTCP)) {
		if (p + 2 > (__u8 *)data_end)
			return NOT_MEDIA;
		rtcp = p[1] >= 192 && p[1] <= 223;
	} else {
		rtcp = !(flags & FP_CARRIES_RTP);
	}
	if (rtcp)
		return is_rtcp(p, len, data_end) ? RTCP : NOT_MEDIA;
	return is_rtp(p, len, data_end) ? RTP : NOT_MEDIA;
}

/* RFC 3550 A.1 and A.8, exactly as rtpmesh_flow::stats::ReceiverStats. */
static __always_inline void init_seq(struct fp_stats *s, __u16 seq)
{
	s->base_seq = seq;
	s->max_seq = seq;
	s->bad_seq = RTP_SEQ_MOD + 1;
	s->cycles = 0;
	s->received = 0;
	s->has_transit = 0;
}

static __always_inline int update_seq(struct fp_stats *s, __u16 seq)
{
	__u16 udelta = seq - s->max_seq;

	if (udelta < MAX_DROPOUT) {
		if (seq < s->max_seq)
			s->cycles += RTP_SEQ_MOD;
		s->max_seq = seq;
	} else if (udelta <= 0xffff - MAX_MISORDER + 1) {
		if ((__u32)seq == s->bad_seq) {
			init_seq(s, seq);
		} else {
			s->bad_seq = ((__u32)seq + 1) & (RTP_SEQ_MOD - 1);
			return 0;
		}
	}
	return 1;
}

/* rtpmesh_flow::stats::rtp_units: elapsed ns in RTP clock units, wrapping. */
static __always_inline __u32 rtp_units(__u64 elapsed, __u32 rate)
{
	__u64 whole = (elapsed / 1000000000ULL) * rate;
	__u64 frac = (elapsed % 1000000000ULL) * rate / 1000000000ULL;

	return (__u32)(whole + frac);
}

static __always_inline void on_rtp(struct fp_stats *s, const struct fp_route *r, __u8 *p, __u64 now)
{
	__u32 ssrc = ((__u32)p[8] << 24) | ((__u32)p[9] << 16) | ((__u32)p[10] << 8) | p[11];
	__u32 ts = ((__u32)p[4] << 24) | ((__u32)p[5] << 16) | ((__u32)p[6] << 8) | p[7];
	__u16 seq = ((__u16)p[2] << 8) | p[3];
	__u32 arrival, transit;

	if (!s->has_ssrc || s->ssrc != ssrc) {
		s->ssrc = ssrc;
		s->has_ssrc = 1;
		s->jitter = 0;
		init_seq(s, seq);
	} else if (!update_seq(s, seq)) {
		return;
	}
	s->received += 1;
	arrival = rtp_units(now > r->epoch_ns ? now - r->epoch_ns : 0, r->clock_rate);
	transit = arrival - ts;
	if (s->has_transit) {
		__s32 d = (__s32)(transit - s->transit);
		__u64 ad = d < 0 ? (__u64)(-(__s64)d) : (__u64)d;

		s->jitter = s->jitter + ad - ((s->jitter + 8) >> 4);
	}
	s->transit = transit;
	s->has_transit = 1;
}

enum verdict { PASS, DROP, FORWARD };

/* The shared decision: PASS leaves the datagram to the sockets untouched,
 * DROP is a strict-source stranger, FORWARD means: rewrite per *route. */
static __always_inline enum verdict decide(struct frame *f, void *data_end,
					   struct fp_route **route, int need_l2)
{
	struct fp_key key = { .addr = f->ip->daddr, .port = f->udp->dest };
	struct fp_route *r = bpf_map_lookup_elem(&routes, &key);
	struct fp_stats *s;
	enum kind kind;
	__u32 index;
	__u64 now;

	if (!r) {
		count(FP_NO_ROUTE);
		return PASS;
	}
	if ((r->flags & (FP_SOURCE_LEARN | FP_SOURCE_STRICT)) &&
	    (f->ip->saddr != r->expect_addr || f->udp->source != r->expect_port)) {
		if (r->flags & FP_SOURCE_STRICT) {
			index = r->stats;
			s = bpf_map_lookup_elem(&stats, &index);
			if (s)
				__sync_fetch_and_add(&s->strict_drops, 1);
			count(FP_STRICT_DROP);
			return DROP;
		}
		count(FP_FOREIGN);
		return PASS;
	}
	kind = classify(r->flags, f->payload, f->len, data_end);
	if (kind == NOT_MEDIA) {
		count(FP_NOT_MEDIA);
		return PASS;
	}
	if (!(r->flags & FP_DELIVER_LOCAL) &&
	    (r->oif == 0 || (need_l2 && !(r->flags & FP_HAVE_L2)))) {
		count(FP_NO_NEIGH);
		return PASS;
	}
	index = r->stats;
	s = bpf_map_lookup_elem(&stats, &index);
	if (!s)
		return PASS;
	now = bpf_ktime_get_ns();
	if (kind == RTP) {
		__sync_fetch_and_add(&s->rtp_packets, 1);
		__sync_fetch_and_add(&s->rtp_bytes, f->len);
		if (f->payload + 12 <= (__u8 *)data_end)
			on_rtp(s, r, f->payload, now);
	} else {
		__sync_fetch_and_add(&s->rtcp_packets, 1);
		__sync_fetch_and_add(&s->rtcp_bytes, f->len);
	}
	s->last_ns = now;
	*route = r;
	count((r->flags & FP_DELIVER_LOCAL) ? FP_LOCAL : FP_FORWARDED);
	return FORWARD;
}

static __always_inline __u16 fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* A fresh IPv4 header checksum (no options: parse_frame checked). */
static __always_inline void ip_checksum(struct iphdr *ip)
{
	__u16 *w = (__u16 *)ip;
	__u32 sum = 0;

	ip->check = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	ip->check = ~fold(sum);
}

/* RFC 1624 incremental update of a full UDP checksum for new addresses
 * and ports (all in network order: one's complement sums do not care). */
static __always_inline void udp_checksum_update(struct frame *f, const struct fp_route *r)
{
	__u32 sum;
	__u16 c;

	if (f->udp->check == 0)
		return; /* IPv4 without a checksum stays without */
	sum = (__u16)~f->udp->check;
	sum += (__u16)~(f->ip->saddr & 0xffff) + (__u16)~(f->ip->saddr >> 16);
	sum += (__u16)~(f->ip->daddr & 0xffff) + (__u16)~(f->ip->daddr >> 16);
	sum += (__u16)~f->udp->source + (__u16)~f->udp->dest;
	sum += (r->from_addr & 0xffff) + (r->from_addr >> 16);
	sum += (r->to_addr & 0xffff) + (r->to_addr >> 16);
	sum += r->from_port + r->to_port;
	c = ~fold(sum);
	f->udp->check = c ? c : 0xffff;
}

static __always_inline void rewrite_addresses(struct frame *f, const struct fp_route *r)
{
	f->ip->saddr = r->from_addr;
	f->ip->daddr = r->to_addr;
	f->ip->ttl = 64;
	f->udp->source = r->from_port;
	f->udp->dest = r->to_port;
}

SEC("xdp")
int fastpath_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct fp_route *r = 0;
	struct frame f;

	if (!parse_frame(data, data_end, &f))
		return XDP_PASS;
	switch (decide(&f, data_end, &r, 1)) {
	case PASS:
		return XDP_PASS;
	case DROP:
		return XDP_DROP;
	case FORWARD:
		break;
	}
	if (!r)
		return XDP_PASS;
	udp_checksum_update(&f, r);
	rewrite_addresses(&f, r);
	ip_checksum(f.ip);
	if (r->flags & FP_DELIVER_LOCAL)
		return XDP_PASS;
	__builtin_memcpy(f.eth->h_source, r->smac, ETH_ALEN);
	__builtin_memcpy(f.eth->h_dest, r->dmac, ETH_ALEN);
	if (r->oif == ctx->ingress_ifindex)
		return XDP_TX;
	return bpf_redirect(r->oif, 0);
}

#define IP_OFF ETH_HLEN
#define IP_CHECK_OFF (IP_OFF + offsetof(struct iphdr, check))
#define UDP_CHECK_OFF (IP_OFF + sizeof(struct iphdr) + offsetof(struct udphdr, check))

SEC("classifier")
int fastpath_tc(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct fp_route *r = 0;
	__u32 old_saddr, old_daddr, to, oif;
	__u16 old_sport, old_dport, old_ttl, new_ttl, flags;
	struct frame f;

	/* Not ours: TC_ACT_UNSPEC lets the next program on the hook (another
	 * node's on the same host) and then the stack have it. */
	if (!parse_frame(data, data_end, &f))
		return TC_ACT_UNSPEC;
	switch (decide(&f, data_end, &r, 0)) {
	case PASS:
		return TC_ACT_UNSPEC;
	case DROP:
		return TC_ACT_SHOT;
	case FORWARD:
		break;
	}
	if (!r)
		return TC_ACT_UNSPEC;
	old_saddr = f.ip->saddr;
	old_daddr = f.ip->daddr;
	old_sport = f.udp->source;
	old_dport = f.udp->dest;
	old_ttl = *(__u16 *)&f.ip->ttl;
	rewrite_addresses(&f, r);
	new_ttl = *(__u16 *)&f.ip->ttl;
	to = r->to_addr;
	oif = r->oif;
	flags = r->flags;
	/* The helpers know whether the skb's UDP checksum is partial (a local
	 * sender's, finished by the device) and change only what is due. */
	bpf_l4_csum_replace(skb, UDP_CHECK_OFF, old_saddr, r->from_addr,
			    BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | 4);
	bpf_l4_csum_replace(skb, UDP_CHECK_OFF, old_daddr, to,
			    BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0 | 4);
	bpf_l4_csum_replace(skb, UDP_CHECK_OFF, old_sport, r->from_port, BPF_F_MARK_MANGLED_0 | 2);
	bpf_l4_csum_replace(skb, UDP_CHECK_OFF, old_dport, r->to_port, BPF_F_MARK_MANGLED_0 | 2);
	bpf_l3_csum_replace(skb, IP_CHECK_OFF, old_saddr, r->from_addr, 4);
	bpf_l3_csum_replace(skb, IP_CHECK_OFF, old_daddr, to, 4);
	bpf_l3_csum_replace(skb, IP_CHECK_OFF, old_ttl, new_ttl, 2);
	if (flags & FP_DELIVER_LOCAL)
		return TC_ACT_OK;
	return bpf_redirect_neigh(oif, 0, 0, 0);
}
