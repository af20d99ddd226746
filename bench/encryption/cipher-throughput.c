/* The CPU floor of pgbackd's encryption, without pgbackd: libsodium secretstream
 * XChaCha20-Poly1305 over N MB in 64 KiB chunks (ObjectCipher's chunk size), encrypt then
 * decrypt, single thread. The machine's load does not matter much for CPU seconds.
 *
 *   cc -O2 -o /tmp/cipher-throughput bench/encryption/cipher-throughput.c -lsodium
 *   /tmp/cipher-throughput 200
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double cpu(void) { struct timespec t; clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); return t.tv_sec + t.tv_nsec / 1e9; }

int main(int argc, char **argv) {
    enum { CHUNK = 64 * 1024 };
    long mb = argc > 1 ? atol(argv[1]) : 200, chunks = mb * 1000000L / CHUNK;
    if (sodium_init() < 0) return 1;
    unsigned char key[crypto_secretstream_xchacha20poly1305_KEYBYTES], header[crypto_secretstream_xchacha20poly1305_HEADERBYTES];
    static unsigned char plain[CHUNK], cipher[CHUNK + crypto_secretstream_xchacha20poly1305_ABYTES];
    crypto_secretstream_xchacha20poly1305_keygen(key);
    randombytes_buf(plain, sizeof plain);
    crypto_secretstream_xchacha20poly1305_state st, rd;
    double t0 = cpu();
    crypto_secretstream_xchacha20poly1305_init_push(&st, header, key);
    crypto_secretstream_xchacha20poly1305_init_pull(&rd, header, key);
    double enc = 0, dec = 0;
    for (long i = 0; i < chunks; i++) {
        unsigned char tag = i + 1 == chunks ? crypto_secretstream_xchacha20poly1305_TAG_FINAL : 0, got;
        unsigned long long clen, plen;
        double a = cpu();
        crypto_secretstream_xchacha20poly1305_push(&st, cipher, &clen, plain, CHUNK, NULL, 0, tag);
        double b = cpu();
        if (crypto_secretstream_xchacha20poly1305_pull(&rd, plain, &plen, &got, cipher, clen, NULL, 0) != 0) return 2;
        enc += b - a; dec += cpu() - b;
    }
    (void)t0;
    double bytes = (double)chunks * CHUNK;
    printf("%ld MB in 64 KiB chunks: encrypt %.3f CPU-s (%.0f MB/s), decrypt %.3f CPU-s (%.0f MB/s)\n",
           mb, enc, bytes / enc / 1e6, dec, bytes / dec / 1e6);
    return 0;
}
