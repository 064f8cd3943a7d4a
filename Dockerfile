# hailuo-hook: build with the official Swift image, run on a slim Debian of the same release (bookworm).
# CI rehearses the runtime stage without a Docker engine: Tests/container/rehearse.py.
# docker build -t hailuo-hook . && docker run -p 8080:8080 -v hailuo-data:/var/lib/hailuo-hook hailuo-hook

FROM swift:6.3-bookworm AS build
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libssl-dev zlib1g-dev libcurl4-openssl-dev libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Package.swift ./
COPY Sources ./Sources
# The stdlib is linked in; FoundationNetworking still loads libcurl at run time.
RUN swift build -c release --static-swift-stdlib -Xlinker -lcurl --product hailuo-hook \
 && bin="$(swift build -c release --static-swift-stdlib --show-bin-path)" \
 && mkdir -p /out \
 && cp "$bin/hailuo-hook" /out/ \
 && cp -r "$bin/hailuo-hook_HailuoHook.resources" /out/

FROM debian:bookworm-slim
# Only what the binary loads: libcurl (FoundationNetworking), OpenSSL (HTTPS), zlib (gzip),
# libpq (the PostgreSQL store, registry.database_url), and CA certificates for HTTPS upstreams.
# Versions are not pinned: the runtime should take the release's security updates.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libcurl4 libssl3 zlib1g libpq5 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --no-log-init --uid 10001 --user-group --create-home --home-dir /var/lib/hailuo-hook --shell /usr/sbin/nologin hailuo
COPY --from=build /out/hailuo-hook /usr/local/bin/hailuo-hook
COPY --from=build /out/hailuo-hook_HailuoHook.resources /usr/local/bin/hailuo-hook_HailuoHook.resources
COPY config/hailuo-hook.json /etc/hailuo-hook/hailuo-hook.json
ENV HAILUO_HOOK_CONFIG=/etc/hailuo-hook/hailuo-hook.json \
    HAILUO_HOOK_JOURNAL=/var/lib/hailuo-hook/journal.log \
    LOG_FORMAT=json
VOLUME ["/var/lib/hailuo-hook"]
USER 10001:10001
EXPOSE 8080
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s CMD ["/usr/local/bin/hailuo-hook", "healthcheck"]
# Exec form: SIGTERM reaches the server, which drains and exits 0.
ENTRYPOINT ["/usr/local/bin/hailuo-hook", "serve"]
