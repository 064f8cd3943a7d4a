import Foundation
import HailuoHook
import Testing

@Suite struct ConfigurationTests {
    func file(_ json: String) throws -> String {
        let path = NSTemporaryDirectory() + "hailuo-config-\(UUID().uuidString).json"
        try json.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    func error(file json: String? = nil, env: [String: String] = [:], flags: [String: String] = [:]) throws -> String? {
        let path = try json.map(file)
        do {
            _ = try Configuration.load(file: path, environment: env, flags: flags)
            return nil
        } catch {
            return error.message
        }
    }

    @Test func defaultsMatchTheRepositoryFile() throws {
        let fromFile = try Configuration.load(file: "config/hailuo-hook.json", environment: [:])
        #expect(fromFile == Configuration())
        #expect(fromFile.port == 8080)
        #expect(fromFile.maxSubmitBodyBytes == 64 * 1024 * 1024)
        #expect(fromFile.maxBodyBytes == 64 * 1024)
    }

    @Test func fileThenEnvironmentThenFlags() throws {
        let path = try file(#"{"server": {"port": 9000, "host": "127.0.0.1"}, "log": {"level": "debug"}}"#)
        let fileOnly = try Configuration.load(file: path, environment: [:])
        #expect(fileOnly.port == 9000)
        #expect(fileOnly.host == "127.0.0.1")
        #expect(fileOnly.logLevel == "debug")
        #expect(fileOnly.idleTimeout == 60)  // missing key keeps its default
        let env = try Configuration.load(file: path, environment: ["PORT": "9100"])
        #expect(env.port == 9100)
        let specific = try Configuration.load(file: path, environment: ["PORT": "9100", "HAILUO_HOOK_PORT": "9200"])
        #expect(specific.port == 9200)
        let flag = try Configuration.load(file: path, environment: ["HAILUO_HOOK_PORT": "9200"], flags: ["server.port": "9300"])
        #expect(flag.port == 9300)
    }

    @Test func secretsComeFromFileOrEnvironmentOnly() throws {
        let c = try Configuration.load(file: nil, environment: ["MINIMAX_API_KEY": "sk-1", "HAILUO_HOOK_API_TOKEN": "t", "HAILUO_HOOK_CALLBACK_TOKEN": "s"])
        #expect(c.upstreamAPIKey == "sk-1")
        #expect(c.apiToken == "t")
        #expect(c.callbackSharedToken == "s")
        #expect(try error(flags: ["upstream.api_key": "sk"])?.contains("cannot be set by a flag") == true)
    }

    @Test func badValuesNameTheKeyAndTheSource() throws {
        #expect(try error(env: ["HAILUO_HOOK_PORT": "eighty"]) == #"config: server.port from environment variable HAILUO_HOOK_PORT must be an integer from 0 to 65535 (got "eighty")"#)
        #expect(try error(env: ["PORT": "70000"])?.contains("server.port") == true)
        #expect(try error(flags: ["server.port": "-1"])?.contains("flag --port") == true)
        #expect(try error(env: ["LOG_LEVEL": "loud"])?.contains("log.level") == true)
        #expect(try error(env: ["LOG_FORMAT": "xml"])?.contains("log.format") == true)
        #expect(try error(env: ["MINIMAX_BASE_URL": "api.minimax.io"])?.contains("upstream.base_url") == true)
        #expect(try error(env: ["MINIMAX_TIMEOUT_S": "0"])?.contains("upstream.timeout_s") == true)
        #expect(try error(file: #"{"server": {"port": "8080"}}"#)?.contains("server.port") == true)
        #expect(try error(file: #"{"server": {"idle_timeout_s": -5}}"#)?.contains("server.idle_timeout_s") == true)
        #expect(try error(file: #"{"server": {"prot": 1}}"#)?.contains("unknown key server.prot") == true)
        #expect(try error(file: #"{"server": "#)?.contains("not valid JSON") == true)
        #expect(try error(file: #"[1, 2]"#)?.contains("must hold a JSON object") == true)
        #expect(try error(file: #"{"server": {"tls": {"cert_file": "/c.pem"}}}"#)?.contains("set together") == true)
    }

    @Test func secretValuesAreNeverEchoed() throws {
        let message = try error(file: #"{"upstream": {"api_key": 12345}}"#) ?? ""
        #expect(message.contains("upstream.api_key"))
        #expect(!message.contains("12345"))
    }

    @Test func missingFileIsAnError() throws {
        #expect(try error(file: nil, env: [:]) == nil)
        do {
            _ = try Configuration.load(file: "/nonexistent/x.json", environment: [:])
            Issue.record("expected an error")
        } catch {
            #expect(error.message.contains("cannot read /nonexistent/x.json"))
        }
    }

    @Test func publicURL() throws {
        var c = Configuration()
        #expect(c.publicURL(port: 4321) == "http://127.0.0.1:4321")
        c.publicURL = "https://hooks.example.com/"
        #expect(c.publicURL(port: 4321) == "https://hooks.example.com")
        #expect(try Configuration.load(file: nil, environment: ["HAILUO_HOOK_PUBLIC_URL": "https://h.example"]).publicURL == "https://h.example")
    }
}
