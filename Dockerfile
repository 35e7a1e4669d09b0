# syntax=docker/dockerfile:1
#
# The prext image: the `prext` binary alone on a distroless base, running as UID 65532.
#
#   docker build -t prext:0.1.0 .
#
# The build stage compiles with the locked dependency versions; BuildKit cache mounts keep
# the cargo registry and the target dir between builds (they are not part of any layer).

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS builder
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p prext-cli --bin prext \
    && install -D -m 0755 target/release/prext /out/prext

# glibc and libgcc, CA certificates and /etc/passwd with the nonroot user; no shell.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=builder /out/prext /usr/local/bin/prext
USER 65532:65532
# The default --data-dir (./prext-data) lands in the nonroot user's home. In Kubernetes the
# chart passes --data-dir on a writable emptyDir (the root filesystem is read-only).
WORKDIR /home/nonroot
EXPOSE 6443
ENTRYPOINT ["/usr/local/bin/prext"]
CMD ["serve", "--listen", "0.0.0.0:6443"]
