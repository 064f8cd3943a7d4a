import Foundation
import Glibc
import Testing

/// `serve` on HTTPS, as a user deploys it: certificates made by the openssl CLI,
/// the whole task loop with the simulator calling back over HTTPS, the
/// healthcheck, bad key files, and a certificate reloaded on SIGHUP.
@Suite(.serialized) struct HTTPSTests {
    let cli = CommandLineTests()
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func makeCertificates() async throws -> String {
        let folder = NSTemporaryDirectory() + "hailuo-https-\(UUID().uuidString)"
        let (status, output) = try await cli.run([root.appendingPathComponent("Tests/tls/make-certs.sh").path, folder], executable: "/bin/sh")
        try #require(status == 0, "\(output)")
        return folder
    }

    func tlsEnvironment(_ folder: String, _ name: String = "server") -> [String: String] {
        ["HAILUO_HOOK_TLS_CERT": "\(folder)/\(name).pem", "HAILUO_HOOK_TLS_KEY": "\(folder)/\(name).key"]
    }

    /// Runs the binary in a private mount namespace whose system CA bundle also
    /// trusts the test CA: that is how URLSession (libcurl) in `serve` and in
    /// `submit` learns to trust it, as `update-ca-certificates` would on a host.
    func trusting(_ folder: String, _ arguments: [String], environment: [String: String] = [:]) async throws -> CommandLineTests.Running {
        let system = (try? String(contentsOfFile: "/etc/ssl/certs/ca-certificates.crt", encoding: .utf8)) ?? ""
        let bundle = folder + "/bundle.pem"
        try (system + "\n" + String(contentsOfFile: folder + "/ca.pem", encoding: .utf8)).write(toFile: bundle, atomically: true, encoding: .utf8)
        let script = #"mount --bind "$1" /etc/ssl/certs/ca-certificates.crt && shift && exec "$@""#
        return try await CommandLineTests.Running(["-m", "--propagation", "private", "/bin/sh", "-c", script, "sh", bundle, CommandLineTests.binary] + arguments,
                                            environment: environment, executable: "/usr/bin/unshare")
    }

    @Test func theWholeLoopRunsOverHTTPS() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: CommandLineTests.binary), "build first: swift build")
        let folder = try await makeCertificates()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let serve = try await trusting(folder, ["serve", "--port", "0", "--host", "127.0.0.1"], environment: tlsEnvironment(folder))
        let port = try await serve.port()
        #expect(serve.text.contains("listening on https://"))
        #expect(serve.text.contains("public_url=https://127.0.0.1:\(port)"))
        let server = "https://127.0.0.1:\(port)"
        // The simulator's callbacks reach /v1/callbacks/<token> on the HTTPS listener.
        let submit = try await trusting(folder, ["submit", "--server", server, "--prompt", "A lighthouse at dusk [Push in]", "--wait"])
        _ = await eventually(timeout: 60) { !submit.process.isRunning }
        #expect(submit.process.terminationStatus == 0, "\(submit.text)\n\(serve.text)")
        #expect(submit.text.contains("success after"))
        let id = String(try #require(submit.text.split(separator: "\n").first?.dropFirst(5)))
        // curl with the CA: the task's events came in over HTTPS, processing then success.
        let (status, task) = try await cli.run(["-sS", "--cacert", folder + "/ca.pem", "\(server)/v1/tasks/\(id)"], executable: "/usr/bin/curl")
        #expect(status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(task.utf8)) as? [String: Any])
        #expect(json["status"] as? String == "success")
        let events = try #require(json["events"] as? [[String: Any]])
        #expect(events.contains { $0["status"] as? String == "success" && $0["applied"] as? Bool == true })
        #expect(await serve.stop() == 0)
    }

    @Test func healthcheckSpeaksHTTPSWhenTheConfigurationDoes() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: CommandLineTests.binary), "build first: swift build")
        let folder = try await makeCertificates()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let serve = try await CommandLineTests.Running(["serve", "--port", "0", "--host", "127.0.0.1"], environment: tlsEnvironment(folder))
        let port = try await serve.port()
        var environment = tlsEnvironment(folder)
        environment["HAILUO_HOOK_PORT"] = "\(port)"
        let (up, output) = try await cli.run(["healthcheck"], environment: environment)
        #expect(up == 0, "\(output)")
        // Plain HTTP to the same port is answered 400, so a plain probe fails.
        let (plain, plainOutput) = try await cli.run(["healthcheck", "--url", "http://127.0.0.1:\(port)"])
        #expect(plain == 1)
        #expect(plainOutput.contains("answered 400"))
        #expect(await serve.stop() == 0)
    }

    @Test func badKeyFilesStopTheStartWithOneLineAndExit2() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: CommandLineTests.binary), "build first: swift build")
        let folder = try await makeCertificates()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let mismatched = ["HAILUO_HOOK_TLS_CERT": "\(folder)/server.pem", "HAILUO_HOOK_TLS_KEY": "\(folder)/other.key"]
        let (status, output) = try await cli.run(["serve", "--port", "0"], environment: mismatched)
        #expect(status == 2)
        #expect(output.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "\n").count == 1)
        #expect(output.contains("does not match the certificate"))
        chmod("\(folder)/server.key", 0o604)
        let (openStatus, openOutput) = try await cli.run(["serve", "--port", "0"], environment: tlsEnvironment(folder))
        #expect(openStatus == 2)
        #expect(openOutput.contains("open to every user"))
        let (halfStatus, halfOutput) = try await cli.run(["serve", "--port", "0"], environment: ["HAILUO_HOOK_TLS_CERT": "\(folder)/server.pem"])
        #expect(halfStatus == 2)
        #expect(halfOutput.contains("must be set together"))
    }

    @Test func sighupReloadsTheCertificateAndABadOneKeepsTheOld() async throws {
        try #require(FileManager.default.isExecutableFile(atPath: CommandLineTests.binary), "build first: swift build")
        let folder = try await makeCertificates()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let live = ["HAILUO_HOOK_TLS_CERT": "\(folder)/live.pem", "HAILUO_HOOK_TLS_KEY": "\(folder)/live.key"]
        try copy(folder, "server", to: "live")
        let serve = try await CommandLineTests.Running(["serve", "--port", "0", "--host", "127.0.0.1"], environment: live)
        let port = try await serve.port()
        #expect(try await subject(folder, port).contains("CN = server"))
        try copy(folder, "rotated", to: "live")
        kill(serve.process.processIdentifier, SIGHUP)
        #expect(await eventually { serve.text.contains("reloaded the TLS certificate") })
        #expect(try await subject(folder, port).contains("CN = rotated"))
        // A broken file on the next reload: the server keeps the pair it has.
        try "not a certificate".write(toFile: "\(folder)/live.pem", atomically: true, encoding: .utf8)
        kill(serve.process.processIdentifier, SIGHUP)
        #expect(await eventually { serve.text.contains("TLS reload failed, keeping the current certificate") })
        #expect(try await subject(folder, port).contains("CN = rotated"))
        #expect(await serve.stop() == 0)
    }

    func copy(_ folder: String, _ name: String, to target: String) throws {
        for ext in ["pem", "key"] {
            let destination = "\(folder)/\(target).\(ext)"
            try? FileManager.default.removeItem(atPath: destination)
            try FileManager.default.copyItem(atPath: "\(folder)/\(name).\(ext)", toPath: destination)
            chmod(destination, 0o600)
        }
    }

    func subject(_ folder: String, _ port: Int) async throws -> String {
        let script = "openssl s_client -connect 127.0.0.1:$1 </dev/null 2>/dev/null | openssl x509 -noout -subject"
        let (_, subject) = try await cli.run(["-c", script, "sh", "\(port)"], executable: "/bin/sh")
        return subject
    }
}
