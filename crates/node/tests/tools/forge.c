/* Test tool for the anti-spoofing attack: sends one UDP datagram with a chosen IPv4 source
 * address through a raw socket (IP_HDRINCL), as a sliver's root could. Built statically by the
 * test (the sliver's image has no C library) and run inside a sliver.
 * usage: forge SRC DST PORT PAYLOAD */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static unsigned short csum(const void *data, int len) {
    const unsigned short *p = data;
    unsigned long sum = 0;
    for (; len > 1; len -= 2) sum += *p++;
    if (len) sum += *(const unsigned char *)p;
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (unsigned short)~sum;
}

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: forge SRC DST PORT PAYLOAD\n"); return 2; }
    unsigned char pkt[1500];
    size_t plen = strlen(argv[4]);
    if (plen > 1000) return 2;
    memset(pkt, 0, sizeof pkt);
    unsigned char *ip = pkt, *udp = pkt + 20;
    ip[0] = 0x45; ip[8] = 64; ip[9] = 17;
    unsigned short tot = htons((unsigned short)(20 + 8 + plen));
    memcpy(ip + 2, &tot, 2);
    if (inet_pton(AF_INET, argv[1], ip + 12) != 1 || inet_pton(AF_INET, argv[2], ip + 16) != 1) {
        fprintf(stderr, "bad address\n"); return 2;
    }
    unsigned short port = htons((unsigned short)atoi(argv[3])), sport = htons(40000);
    unsigned short ulen = htons((unsigned short)(8 + plen));
    memcpy(udp, &sport, 2); memcpy(udp + 2, &port, 2); memcpy(udp + 4, &ulen, 2);
    memcpy(udp + 8, argv[4], plen);
    unsigned short c = csum(ip, 20);
    memcpy(ip + 10, &c, 2);
    int s = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
    if (s < 0) { perror("socket"); return 1; }
    struct sockaddr_in to = { .sin_family = AF_INET };
    memcpy(&to.sin_addr, ip + 16, 4);
    if (sendto(s, pkt, 28 + plen, 0, (struct sockaddr *)&to, sizeof to) < 0) { perror("sendto"); return 1; }
    return 0;
}
