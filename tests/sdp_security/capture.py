import socket, sys, random
def enc(x):
    if isinstance(x, int): return b'i%de' % x
    if isinstance(x, str): x = x.encode()
    if isinstance(x, bytes): return b'%d:' % len(x) + x
    if isinstance(x, list): return b'l' + b''.join(enc(i) for i in x) + b'e'
    if isinstance(x, dict): return b'd' + b''.join(enc(k)+enc(v) for k,v in sorted(x.items())) + b'e'
def dec(b, i=0):
    c = b[i:i+1]
    if c == b'i':
        j = b.index(b'e', i); return int(b[i+1:j]), j+1
    if c == b'l':
        i += 1; out = []
        while b[i:i+1] != b'e':
            v, i = dec(b, i); out.append(v)
        return out, i+1
    if c == b'd':
        i += 1; out = {}
        while b[i:i+1] != b'e':
            k, i = dec(b, i); v, i = dec(b, i); out[k.decode()] = v
        return out, i+1
    j = b.index(b':', i); n = int(b[i:j]); return b[j+1:j+1+n], j+1+n
def ng(d):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3)
    cookie = b'%d' % random.randint(0, 10**9)
    s.sendto(cookie + b' ' + enc(d), ('127.0.0.1', 22222))
    r = s.recv(65535)
    assert r.startswith(cookie + b' ')
    return dec(r[len(cookie)+1:])[0]
def crlf(s):
    return '\r\n'.join(s.strip('\n').split('\n')) + '\r\n'
# ---------------------------------------------------------------------------
# Captures rtpengine 10.5's offers and answers for tests/sdp_security.rs.
# Run rtpengine as /work/shared/README.md says (with --interface=127.0.0.1
# --interface=::1), then `python3 tests/sdp_security/capture.py`: it writes
# CASE.offer.sdp and CASE.answer.sdp beside itself, for the cases in
# cases.json (which the test reads too).
import os, re

HERE = os.path.dirname(os.path.abspath(__file__))
KAM = {'replace': ['origin', 'session-connection'], 'received-from': ['IP4', '127.0.0.1']}
import json
CASES = json.load(open(os.path.join(HERE, 'cases.json')))['cases']

def tag_of(offer, suite):
    m = re.search(r'a=crypto:(\d+) ' + suite + ' ', offer)
    return m.group(1)

def fill(answer, offer):
    return re.sub(r'\{tag:([A-Z0-9_]+)\}', lambda m: tag_of(offer, m.group(1)), answer)

# Fresh call-ids: a re-offer on a call rtpengine still holds puts the
# suite agreed before first.
RUN = '-%d' % random.randint(0, 10**9)
for c in CASES:
    name, offer, oflags, answer, aflags = c['name'], c['offer'], c['offer_keys'], c['answer'], c['answer_keys']
    d = dict(KAM); d.update(oflags); d.update(c['rtpengine_only'])
    d.update({'command': 'offer', 'call-id': name + RUN, 'from-tag': 'ft', 'sdp': offer})
    r = ng(d)
    o = r['sdp'].decode()
    open(os.path.join(HERE, name + '.offer.sdp'), 'w', newline='').write(o)
    d = dict(KAM); d.update(aflags)
    d.update({'command': 'answer', 'call-id': name + RUN, 'from-tag': 'ft', 'to-tag': 'tt', 'sdp': fill(answer, o)})
    r = ng(d)
    open(os.path.join(HERE, name + '.answer.sdp'), 'w', newline='').write(r['sdp'].decode())
    print(name, 'ok')
