#!/usr/bin/env python3
import json, os, socket, struct, sys, time
# One DISCOVER from an address-less client, sent and heard on raw Ethernet (AF_PACKET, as dhclient
# does); prints the IPv4 destination and yiaddr of every DHCP reply heard within the wait.
ifname, mac_text, wait = sys.argv[1], sys.argv[2], float(sys.argv[3])
mac = bytes.fromhex(mac_text.replace(':', ''))
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
xid = os.urandom(4)
bootp = struct.pack('!BBBB4sHH4s4s4s4s16s64s128s', 1, 1, 6, 0, xid, 0, 0x8000, b'\0'*4, b'\0'*4, b'\0'*4, b'\0'*4, mac + b'\0'*10, b'', b'')
bootp += b'\x63\x82\x53\x63' + b'\x35\x01\x01' + b'\x37\x03\x01\x03\x06' + b'\xff'
udp = struct.pack('!HHHH', 68, 67, 8 + len(bootp), 0) + bootp
ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, b'\0'*4, b'\xff'*4)
ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
frame = b'\xff'*6 + mac + b'\x08\x00' + ip + udp
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((ifname, 0))
s.send(frame)
end = time.time() + wait
seen = []
while time.time() < end:
    s.settimeout(max(0.01, end - time.time()))
    try:
        data = s.recv(4096)
    except socket.timeout:
        break
    if len(data) < 14 + 20 + 8 + 240 or data[14 + 9] != 17: continue
    ihl = (data[14] & 0x0f) * 4
    u = 14 + ihl
    if struct.unpack('!H', data[u + 2:u + 4])[0] != 68: continue
    b = data[u + 8:]
    if b[0] != 2 or b[4:8] != xid: continue
    seen.append({'dst': socket.inet_ntoa(data[14 + 16:14 + 20]), 'src': socket.inet_ntoa(data[14 + 12:14 + 16]), 'yiaddr': socket.inet_ntoa(b[16:20])})
print(json.dumps(seen))
