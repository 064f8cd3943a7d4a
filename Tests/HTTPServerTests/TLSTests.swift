import Foundation
import Glibc
import HTTPServer
import Testing

/// HTTPS through the system OpenSSL, checked with the tools a user has: curl and openssl s_client.
@Suite struct TLSTests {
    let curl = "/usr/bin/curl"
    let openssl = "/usr/bin/openssl"

    func tlsConfiguration(_ certificates: TestCertificates, _ change: (inout ServerConfiguration) -> Void = { _ in }) throws -> ServerConfiguration {
        let context = try TLSContext(certificateFile: certificates.certificate(), keyFile: certificates.key())
        return .test {
            $0.tls = context
            change(&$0)
        }
    }

    @Test func curlCompletesRequestsOverOneKeptAliveConnection() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        try await withServer(try tlsConfiguration(certificates)) { server in
            let url = "https://127.0.0.1:\(server.port)"
            let run = try await runTool(curl, ["-sS", "--cacert", certificates.ca,
                                               "-w", " %{http_code} %{num_connects} %{http_version}\n",
                                               "\(url)/hello", "\(url)/items/7", "\(url)/hello"])
            #expect(run.status == 0, "\(run.errors)")
            #expect(run.output == "hello 200 1 1.1\nitem 7 200 0 1.1\nhello 200 0 1.1\n")
            // A body in, a megabyte out: partial TLS writes and many records.
            let body = String(repeating: "x", count: 1000)
            let echo = try await runTool(curl, ["-sS", "--cacert", certificates.ca, "--data-binary", body, "\(url)/echo"])
            #expect(echo.output == body)
            let big = try await runTool(curl, ["-sS", "--cacert", certificates.ca, "-o", "/dev/null", "-w", "%{size_download}", "\(url)/big?n=3000000"])
            #expect(big.output == "3000000")
        }
    }

    @Test func speaksTLS12And13WithALPNHTTP11AndRefusesOlderVersions() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        try await withServer(try tlsConfiguration(certificates)) { server in
            let url = "https://127.0.0.1:\(server.port)/hello"
            let v13 = try await runTool(curl, ["-sSv", "--cacert", certificates.ca, url])
            #expect(v13.errors.contains("TLSv1.3"))
            #expect(v13.errors.contains("ALPN: server accepted http/1.1"))
            let v12 = try await runTool(curl, ["-sSv", "--cacert", certificates.ca, "--tls-max", "1.2", url])
            #expect(v12.status == 0)
            #expect(v12.errors.contains("TLSv1.2 / ECDHE"))
            let v11 = try await runTool(curl, ["-sS", "--cacert", certificates.ca, "--tlsv1.1", "--tls-max", "1.1", url])
            #expect(v11.status == 35, "\(v11.errors)")
            // A client offering only h2 gets no protocol it did not ask for.
            let h2 = try await runTool(openssl, ["s_client", "-connect", "127.0.0.1:\(server.port)", "-alpn", "h2"], input: "")
            #expect(h2.output.contains("No ALPN negotiated"))
            // An unknown CA is refused by the client: the certificate is the one we loaded.
            let unknown = try await runTool(curl, ["-sS", url])
            #expect(unknown.status == 60)
        }
    }

    @Test func plainHTTPToTheTLSPortGetsASentenceAndTheServerGoesOn() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        try await withServer(try tlsConfiguration(certificates)) { server in
            let client = try RawClient(port: server.port)
            let answer = try await client.exchange("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(answer.status == 400)
            #expect(answer.text.contains("this port speaks HTTPS"))
            #expect(answer.header("Connection") == "close")
            #expect(try await client.closedByServer())
            let after = try await runTool(curl, ["-sS", "--cacert", certificates.ca, "https://127.0.0.1:\(server.port)/hello"])
            #expect(after.output == "hello")
        }
    }

    @Test func stalledAndGarbageHandshakesAreDroppedWithoutHarm() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        try await withServer(try tlsConfiguration(certificates) { $0.tlsHandshakeTimeout = 0.5 }) { server in
            // Half a ClientHello record, then silence.
            let stalled = try RawClient(port: server.port)
            try await stalled.send([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            // Binary noise that is no TLS record at all.
            let noise = try RawClient(port: server.port)
            try await noise.send([0x00, 0xFF, 0x13, 0x37] + [UInt8](repeating: 0x42, count: 300))
            #expect(try await noise.closedByServer())
            // Meanwhile a real client is served.
            let run = try await runTool(curl, ["-sS", "--cacert", certificates.ca, "https://127.0.0.1:\(server.port)/hello"])
            #expect(run.output == "hello")
            let started = Date()
            #expect(try await stalled.closedByServer())
            #expect(Date().timeIntervalSince(started) < 3)
            #expect(await eventually { server.connectionCount == 0 })
        }
    }

    @Test func aReloadedCertificateServesNewConnections() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        try await withServer(try tlsConfiguration(certificates)) { server in
            let before = try await subject(port: server.port)
            #expect(before.contains("CN = server"))
            server.reloadTLS(try TLSContext(certificateFile: certificates.certificate("rotated"), keyFile: certificates.key("rotated")))
            let after = try await subject(port: server.port)
            #expect(after.contains("CN = rotated"))
        }
    }

    func subject(port: Int) async throws -> String {
        let handshake = try await runTool(openssl, ["s_client", "-connect", "127.0.0.1:\(port)"], input: "")
        let subject = try await runTool(openssl, ["x509", "-noout", "-subject"], input: handshake.output)
        return subject.output
    }

    @Test func badKeyFilesStopTheStartWithOneSentence() async throws {
        let certificates = try await TestCertificates.make()
        defer { certificates.remove() }
        func message(_ certificate: String, _ key: String) -> String {
            do {
                _ = try TLSContext(certificateFile: certificate, keyFile: key)
                return "loaded"
            } catch {
                return error.description
            }
        }
        #expect(message(certificates.certificate(), certificates.key("other")).contains("does not match the certificate"))
        #expect(message(certificates.certificate(), certificates.folder + "/missing.key").contains("cannot read it (No such file or directory)"))
        #expect(message(certificates.key(), certificates.key()).contains("no usable PEM certificate"))
        chmod(certificates.key(), 0o644)
        let open = message(certificates.certificate(), certificates.key())
        #expect(open.contains("open to every user (mode 644)"))
        #expect(!open.contains("\n"))
        chmod(certificates.key(), 0o640)
        #expect(message(certificates.certificate(), certificates.key()) == "loaded")
    }
}
