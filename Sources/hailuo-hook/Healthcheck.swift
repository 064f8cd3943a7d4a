import ArgumentParser
import COpenSSL
import Foundation
import Glibc
import HailuoHook
import HTTPServer

/// The container's HEALTHCHECK, with no curl in the image: exit 0 when /healthz answers 200.
/// It reads the same configuration as `serve` (file, then environment), so it
/// knows the port and whether the listener speaks HTTPS.
struct Healthcheck: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Exit 0 if the local server answers GET /healthz with 200 (for HEALTHCHECK).")

    @Option(help: "Base URL (default: http(s)://127.0.0.1:<server.port>, from the configuration serve reads).") var url: String?
    @Option(help: "Seconds to wait for the answer.") var timeout = 3.0

    func run() throws {
        let base: String
        if let url {
            base = url
        } else {
            let environment = ProcessInfo.processInfo.environment
            let file = environment["HAILUO_HOOK_CONFIG"]
                ?? (FileManager.default.fileExists(atPath: "config/hailuo-hook.json") ? "config/hailuo-hook.json" : nil)
            do {
                let configuration = try Configuration.load(file: file, environment: environment, flags: [:])
                base = "\(configuration.tlsCertFile == nil ? "http" : "https")://127.0.0.1:\(configuration.port)"
            } catch {
                printError("healthcheck: \(error)")
                throw ExitCode(2)
            }
        }
        guard let target = URLComponents(string: base), let scheme = target.scheme, scheme == "http" || scheme == "https",
              let host = target.host else {
            printError("healthcheck: --url must be http://HOST:PORT or https://HOST:PORT")
            throw ExitCode(2)
        }
        let port = target.port ?? (scheme == "https" ? 443 : 80)
        do {
            let status = try HealthProbe.status(host: host, port: port, tls: scheme == "https", timeout: timeout)
            guard status == 200 else {
                printError("healthcheck: \(base)/healthz answered \(status)")
                throw ExitCode(1)
            }
        } catch let failure as HealthProbe.Failure {
            printError("healthcheck: \(base)/healthz: \(failure.message)")
            throw ExitCode(1)
        }
    }
}

/// One `GET /healthz` over a blocking socket, optionally through TLS. The
/// certificate is not verified: the probe asks its own process on its own
/// host whether it is alive, and the certificate names the public host.
enum HealthProbe {
    struct Failure: Error { let message: String }

    static func status(host: String, port: Int, tls: Bool, timeout: Double) throws(Failure) -> Int {
        let socket: Socket
        do {
            socket = try Socket.connected(host: host, port: port, timeout: timeout)
        } catch {
            throw Failure(message: "\(error)")
        }
        defer { socket.close() }
        let fd = socket.fd
        let request = Array("GET /healthz HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n\r\n".utf8)
        var answer: [UInt8] = []
        if tls {
            guard let context = SSL_CTX_new(TLS_client_method()) else { throw Failure(message: "cannot create a TLS context") }
            defer { SSL_CTX_free(context) }
            guard let ssl = SSL_new(context) else { throw Failure(message: "cannot create a TLS session") }
            defer { SSL_free(ssl) }
            SSL_set_fd(ssl, fd)
            _ = hh_ssl_set_client_alpn_http11(ssl)
            guard SSL_connect(ssl) == 1 else { throw Failure(message: "TLS handshake failed") }
            guard SSL_write(ssl, request, Int32(request.count)) == Int32(request.count) else { throw Failure(message: "cannot send") }
            answer = readHead { buffer in Int(SSL_read(ssl, buffer.baseAddress, Int32(buffer.count))) }
        } else {
            guard send(fd, request, request.count, Int32(MSG_NOSIGNAL)) == request.count else { throw Failure(message: "cannot send: \(String(cString: strerror(errno)))") }
            answer = readHead { buffer in recv(fd, buffer.baseAddress, buffer.count, 0) }
        }
        // "HTTP/1.1 200 OK"
        let line = String(decoding: answer.prefix { $0 != 13 && $0 != 10 }, as: UTF8.self)
        let parts = line.split(separator: " ")
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/1."), let code = Int(parts[1]) else {
            throw Failure(message: answer.isEmpty ? "no answer within \(timeout) s" : "not an HTTP answer: \(line.prefix(60))")
        }
        return code
    }

    /// Reads until the status line is in (or the peer stops).
    private static func readHead(_ read: (UnsafeMutableRawBufferPointer) -> Int) -> [UInt8] {
        var answer: [UInt8] = []
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 1)
        defer { buffer.deallocate() }
        while !answer.contains(10) && answer.count < 65_536 {
            let n = read(buffer)
            if n <= 0 { break }
            answer.append(contentsOf: buffer[0..<n])
        }
        return answer
    }
}
