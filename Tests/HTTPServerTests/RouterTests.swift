import HTTPServer
import Testing

@Suite struct RouterTests {
    let router: Router = {
        let r = Router()
        r.get("/healthz", .sync { _ in Response() })
        r.get("/v1/tasks", .sync { _ in Response() })
        r.get("/v1/tasks/:id", .sync { _ in Response() })
        r.post("/v1/callbacks/:token", .sync { _ in Response() })
        return r
    }()

    @Test func literalAndParameterRoutes() {
        guard case .found(let route, let params) = router.match(method: "GET", path: "/v1/tasks/abc") else {
            Issue.record("no match"); return
        }
        #expect(route.pattern == "/v1/tasks/:id")
        #expect(params["id"] == "abc")
        guard case .found(let list, _) = router.match(method: "GET", path: "/v1/tasks") else { Issue.record("no list"); return }
        #expect(list.pattern == "/v1/tasks")
    }

    @Test func percentEncodedParameterIsDecoded() {
        guard case .found(_, let params) = router.match(method: "POST", path: "/v1/callbacks/a%20b") else { Issue.record("no match"); return }
        #expect(params["token"] == "a b")
    }

    @Test func headFollowsGet() {
        guard case .found(let route, _) = router.match(method: "HEAD", path: "/healthz") else { Issue.record("no match"); return }
        #expect(route.method == "GET")
    }

    @Test func notFoundAndMethodNotAllowed() {
        guard case .notFound = router.match(method: "GET", path: "/v1/nothing") else { Issue.record("expected 404"); return }
        guard case .notFound = router.match(method: "GET", path: "/v1/tasks/a/b") else { Issue.record("expected 404"); return }
        guard case .methodNotAllowed(let allow) = router.match(method: "POST", path: "/healthz") else { Issue.record("expected 405"); return }
        #expect(allow == ["GET", "HEAD"])
        guard case .methodNotAllowed(let allowPost) = router.match(method: "GET", path: "/v1/callbacks/x") else { Issue.record("expected 405"); return }
        #expect(allowPost == ["POST"])
    }

    @Test func trailingSlashMatchesTheSameRoute() {
        guard case .found = router.match(method: "GET", path: "/healthz/") else { Issue.record("no match"); return }
    }
}
