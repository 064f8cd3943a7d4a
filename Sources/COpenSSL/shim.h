#ifndef HAILUO_HOOK_COPENSSL_SHIM_H
#define HAILUO_HOOK_COPENSSL_SHIM_H

// The system OpenSSL (Debian's libssl-dev). Swift cannot call OpenSSL's
// function-like macros, so the few this project needs are wrapped here.
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509.h>
#include <string.h>

static inline int hh_ssl_ctx_set_min_tls12(SSL_CTX *ctx) {
    return (int)SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
}

static inline void hh_ssl_ctx_set_server_options(SSL_CTX *ctx) {
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
    // Partial writes and a buffer that may move between retries: the
    // connection's output buffer grows while a write waits. Buffers released
    // while idle: an idle keep-alive connection then holds no 34 KiB of TLS buffers.
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER);
    // Read what the socket holds in one read() rather than a record's 5-byte
    // header and then its body: one system call fewer per request.
    SSL_CTX_set_read_ahead(ctx, 1);
}

static inline void hh_ssl_ctx_set_client_options(SSL_CTX *ctx) {
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
}

/// ALPN: this server speaks http/1.1 only; a client offering only h2 gets no
/// ALPN answer (and falls back or gives up), never a protocol we do not speak.
static inline int hh_alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                                 const unsigned char *in, unsigned int inlen, void *arg) {
    (void)ssl; (void)arg;
    static const unsigned char http11[] = "http/1.1";
    unsigned int i = 0;
    while (i < inlen) {
        unsigned int len = in[i];
        if (i + 1 + len > inlen) break;
        if (len == 8 && memcmp(in + i + 1, http11, 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + len;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

static inline void hh_ssl_ctx_set_alpn_http11(SSL_CTX *ctx) {
    SSL_CTX_set_alpn_select_cb(ctx, hh_alpn_select, NULL);
}

static inline int hh_ssl_set_client_alpn_http11(SSL *ssl) {
    static const unsigned char protos[] = "\x08http/1.1";
    return SSL_set_alpn_protos(ssl, protos, 9);
}

static inline int hh_ssl_set_sni(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

/// The oldest error on this thread's OpenSSL queue as text (queue then emptied); "" when none.
static inline void hh_ssl_last_error(char *buffer, size_t length) {
    unsigned long code = ERR_peek_last_error();
    if (code == 0) { if (length > 0) buffer[0] = 0; }
    else { ERR_error_string_n(code, buffer, length); }
    ERR_clear_error();
}

#endif
