import COpenSSL
import Glibc

/// Why a certificate and key could not be loaded: one line naming the file.
public struct TLSError: Error, Sendable, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// A server's certificate chain and key in an OpenSSL context: TLS 1.2 and
/// 1.3 only, forward-secret AEAD ciphers for 1.2 (1.3's are all AEAD), no
/// renegotiation, no compression, ALPN `http/1.1`. Immutable once made; a
/// reload makes a new one (connections keep the context they started with:
/// OpenSSL counts its references).
public final class TLSContext: @unchecked Sendable {
    let context: OpaquePointer
    /// The certificate's subject and expiry, for the log.
    public let subject: String
    public let notAfter: String
    public let isExpired: Bool

    /// Mozilla's "intermediate" list for TLS 1.2.
    static let tls12Ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
        + "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

    /// Loads a PEM chain and key. The key file must be readable by this
    /// process and by no other user (no permission bits for "other"), and must match the certificate.
    public init(certificateFile: String, keyFile: String) throws(TLSError) {
        try TLSContext.checkReadable(certificateFile, key: "server.tls.cert_file")
        try TLSContext.checkReadable(keyFile, key: "server.tls.key_file")
        var info = stat()
        if stat(keyFile, &info) == 0, info.st_mode & 0o007 != 0 {
            throw TLSError("server.tls.key_file \(keyFile) is open to every user (mode \(String(info.st_mode & 0o777, radix: 8))); chmod 600 (or 640) it")
        }
        guard let context = SSL_CTX_new(TLS_server_method()) else { throw TLSError("TLS: cannot create a context: \(TLSContext.lastError())") }
        var ok = false
        defer { if !ok { SSL_CTX_free(context) } }
        guard hh_ssl_ctx_set_min_tls12(context) == 1, SSL_CTX_set_cipher_list(context, TLSContext.tls12Ciphers) == 1 else {
            throw TLSError("TLS: cannot set the protocol versions and ciphers: \(TLSContext.lastError())")
        }
        hh_ssl_ctx_set_server_options(context)
        hh_ssl_ctx_set_alpn_http11(context)
        guard SSL_CTX_use_certificate_chain_file(context, certificateFile) == 1 else {
            throw TLSError("server.tls.cert_file \(certificateFile): no usable PEM certificate in it (\(TLSContext.lastError()))")
        }
        guard SSL_CTX_use_PrivateKey_file(context, keyFile, SSL_FILETYPE_PEM) == 1 else {
            let reason = TLSContext.lastError()
            if reason.contains("mismatch") {
                throw TLSError("server.tls.key_file \(keyFile) does not match the certificate in server.tls.cert_file \(certificateFile)")
            }
            throw TLSError("server.tls.key_file \(keyFile): no usable PEM private key in it (\(reason))")
        }
        guard SSL_CTX_check_private_key(context) == 1 else {
            throw TLSError("server.tls.key_file \(keyFile) does not match the certificate in server.tls.cert_file \(certificateFile)")
        }
        let certificate = SSL_CTX_get0_certificate(context)
        subject = TLSContext.subject(of: certificate)
        notAfter = TLSContext.notAfter(of: certificate)
        isExpired = certificate.map { X509_cmp_current_time(X509_get0_notAfter($0)) < 0 } ?? false
        self.context = context
        ok = true
    }

    deinit { SSL_CTX_free(context) }

    private static func checkReadable(_ path: String, key: String) throws(TLSError) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            throw TLSError("\(key) \(path): cannot read it (\(String(cString: strerror(errno))))")
        }
        close(fd)
    }

    /// The oldest OpenSSL error of this thread as text, and the queue emptied.
    static func lastError() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        hh_ssl_last_error(&buffer, buffer.count)
        let text = TLSContext.text(buffer)
        return text.isEmpty ? "unknown error" : text
    }

    /// A NUL-terminated C buffer as text.
    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func subject(of certificate: OpaquePointer?) -> String {
        guard let certificate, let name = X509_get_subject_name(certificate) else { return "" }
        var buffer = [CChar](repeating: 0, count: 256)
        X509_NAME_oneline(name, &buffer, Int32(buffer.count))
        return TLSContext.text(buffer)
    }

    private static func notAfter(of certificate: OpaquePointer?) -> String {
        guard let certificate, let time = X509_get0_notAfter(certificate), let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        ASN1_TIME_print(bio, time)
        var buffer = [CChar](repeating: 0, count: 64)
        let n = BIO_read(bio, &buffer, Int32(buffer.count - 1))
        return n > 0 ? TLSContext.text(buffer) : ""
    }
}

/// One connection's TLS state on a non-blocking socket. Used only on its
/// connection's loop. The handshake happens inside the first reads.
final class TLSSession {
    private let ssl: OpaquePointer
    /// After a protocol or socket error OpenSSL must not be asked to send close_notify.
    private var broken = false
    /// The last read could not go on until the socket took bytes (rare: TLS 1.3 key updates).
    private(set) var readWantsWrite = false

    init?(context: TLSContext, fd: Int32) {
        guard let ssl = SSL_new(context.context) else { return nil }
        guard SSL_set_fd(ssl, fd) == 1 else { SSL_free(ssl); return nil }
        SSL_set_accept_state(ssl)
        self.ssl = ssl
    }

    deinit { SSL_free(ssl) }

    var isEstablished: Bool { SSL_is_init_finished(ssl) == 1 }

    func read(into buffer: UnsafeMutableRawBufferPointer) -> Socket.ReadResult {
        ERR_clear_error()
        readWantsWrite = false
        let n = SSL_read(ssl, buffer.baseAddress, Int32(min(buffer.count, Int(Int32.max))))
        if n > 0 { return .bytes(Int(n)) }
        let savedErrno = errno
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_READ:
            return .wouldBlock
        case SSL_ERROR_WANT_WRITE:
            readWantsWrite = true
            return .wouldBlock
        case SSL_ERROR_ZERO_RETURN:
            return .endOfFile
        case SSL_ERROR_SYSCALL where savedErrno == 0:
            // The peer closed without close_notify.
            broken = true
            return .endOfFile
        default:
            broken = true
            ERR_clear_error()
            return .failed(savedErrno == 0 ? EPROTO : savedErrno)
        }
    }

    func write(_ bytes: UnsafeRawBufferPointer) -> Socket.WriteResult {
        guard !broken else { return .failed(EPIPE) }
        ERR_clear_error()
        let n = SSL_write(ssl, bytes.baseAddress, Int32(min(bytes.count, Int(Int32.max))))
        if n > 0 { return .bytes(Int(n)) }
        let savedErrno = errno
        switch SSL_get_error(ssl, n) {
        case SSL_ERROR_WANT_READ, SSL_ERROR_WANT_WRITE:
            return .wouldBlock
        default:
            broken = true
            ERR_clear_error()
            return .failed(savedErrno == 0 ? EPROTO : savedErrno)
        }
    }

    /// Sends close_notify when the session is sound (one attempt: a full socket just skips it).
    func shutdown() {
        guard !broken, isEstablished else { return }
        ERR_clear_error()
        _ = SSL_shutdown(ssl)
        ERR_clear_error()
    }
}
