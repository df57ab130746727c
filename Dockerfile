# The mcp-fleet binary (registry, health worker, gateway, CLI) in a small image that runs as a
# non-root user. Build: docker build -t mcp-fleet .   (or podman/buildah with the same file)
#
# Stage 1 builds the release binary. The dependency graph is fetched in its own layer so that a
# change to the sources does not download crates again.
FROM docker.io/library/rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p mcp-fleet \
 && install -D -m 0755 target/release/mcp-fleet /out/mcp-fleet

# Stage 2: glibc and libgcc only (the binary links nothing else: TLS is rustls, SQLite is
# compiled in), no shell, no package manager, user 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/mcp-fleet /usr/local/bin/mcp-fleet
USER 65532:65532
# The registry's and the gateway's ports in the Kubernetes manifests (deploy/kubernetes).
EXPOSE 4000 4100
ENV MCP_FLEET_LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/mcp-fleet"]
CMD ["serve", "--listen", "0.0.0.0:4000"]
