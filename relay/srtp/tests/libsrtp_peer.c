/*
 * libsrtp_peer: an independent SRTP implementation (libsrtp2) for
 * rtpmesh-srtp's interop test (tests/libsrtp.rs compiles and runs it).
 *
 * Usage: libsrtp_peer SUITE HEX_MASTER_KEY_AND_SALT
 *   SUITE: AES_CM_128_HMAC_SHA1_80 | AES_CM_128_HMAC_SHA1_32 | AEAD_AES_128_GCM |
 *          AEAD_AES_256_GCM
 * Then one command per line on stdin:
 *   rtp-protect HEX | rtp-unprotect HEX | rtcp-protect HEX | rtcp-unprotect HEX
 *   | rtcp-protect-unencrypted HEX (authenticated only, E=0: a third session)
 * and one answer per line on stdout: "ok HEX" or "err STATUS".
 * Protection uses one session (any outbound SSRC), unprotection another
 * (any inbound SSRC), both with the given key and libsrtp's defaults
 * (replay window 128, no repeated transmission).
 */
#include <srtp2/srtp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PACKET 4096

static int unhex(const char *s, unsigned char *out, int max)
{
    int n = 0;
    while (s[0] && s[1] && s[0] != '\n' && n < max) {
        unsigned int b;
        if (sscanf(s, "%2x", &b) != 1)
            return -1;
        out[n++] = (unsigned char)b;
        s += 2;
    }
    return n;
}

static int set_suite(srtp_policy_t *p, const char *suite)
{
    if (!strcmp(suite, "AES_CM_128_HMAC_SHA1_80")) {
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p->rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p->rtcp);
    } else if (!strcmp(suite, "AES_CM_128_HMAC_SHA1_32")) {
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&p->rtp);
        srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&p->rtcp);
    } else if (!strcmp(suite, "AEAD_AES_128_GCM")) {
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p->rtp);
        srtp_crypto_policy_set_aes_gcm_128_16_auth(&p->rtcp);
    } else if (!strcmp(suite, "AEAD_AES_256_GCM")) {
        srtp_crypto_policy_set_aes_gcm_256_16_auth(&p->rtp);
        srtp_crypto_policy_set_aes_gcm_256_16_auth(&p->rtcp);
    } else {
        return -1;
    }
    return 0;
}

static srtp_t session(const char *suite, unsigned char *key, srtp_ssrc_type_t dir, int rtcp_auth_only)
{
    srtp_policy_t p;
    srtp_t s;
    memset(&p, 0, sizeof p);
    if (set_suite(&p, suite)) {
        fprintf(stderr, "libsrtp_peer: unknown suite %s\n", suite);
        exit(2);
    }
    if (rtcp_auth_only)
        p.rtcp.sec_serv = sec_serv_auth;
    p.ssrc.type = dir;
    p.key = key;
    p.window_size = 128;
    if (srtp_create(&s, &p) != srtp_err_status_ok) {
        fprintf(stderr, "libsrtp_peer: srtp_create failed\n");
        exit(2);
    }
    return s;
}

int main(int argc, char **argv)
{
    static unsigned char key[64], pkt[MAX_PACKET + SRTP_MAX_TRAILER_LEN + 16];
    static char line[2 * MAX_PACKET + 64];
    srtp_t tx, rx, tx_clear;

    if (argc != 3 || unhex(argv[2], key, sizeof key) <= 0) {
        fprintf(stderr, "usage: libsrtp_peer SUITE HEX_KEY_AND_SALT\n");
        return 2;
    }
    if (srtp_init() != srtp_err_status_ok)
        return 2;
    tx = session(argv[1], key, ssrc_any_outbound, 0);
    rx = session(argv[1], key, ssrc_any_inbound, 0);
    tx_clear = session(argv[1], key, ssrc_any_outbound, 1);

    while (fgets(line, sizeof line, stdin)) {
        char *hex = strchr(line, ' ');
        int len, status;
        if (!hex) {
            printf("err usage\n");
            fflush(stdout);
            continue;
        }
        *hex++ = 0;
        len = unhex(hex, pkt, MAX_PACKET);
        if (len < 0)
            status = -1;
        else if (!strcmp(line, "rtp-protect"))
            status = srtp_protect(tx, pkt, &len);
        else if (!strcmp(line, "rtp-unprotect"))
            status = srtp_unprotect(rx, pkt, &len);
        else if (!strcmp(line, "rtcp-protect"))
            status = srtp_protect_rtcp(tx, pkt, &len);
        else if (!strcmp(line, "rtcp-protect-unencrypted"))
            status = srtp_protect_rtcp(tx_clear, pkt, &len);
        else if (!strcmp(line, "rtcp-unprotect"))
            status = srtp_unprotect_rtcp(rx, pkt, &len);
        else
            status = -1;
        if (status) {
            printf("err %d\n", status);
        } else {
            printf("ok ");
            for (int i = 0; i < len; i++)
                printf("%02x", pkt[i]);
            printf("\n");
        }
        fflush(stdout);
    }
    return 0;
}
