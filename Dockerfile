# aifw container image. Build from the repository root:
#   docker build -t aifw:0.1.0 .
# Run with a read-only root filesystem; /tmp and the audit dir are the only writable paths:
#   docker run --rm -p 8080:8080 --read-only --tmpfs /tmp \
#     -v aifw-audit:/var/lib/aifw/audit aifw:0.1.0
# Both stages use the same pinned base so the virtualenv copied between them finds the same
# interpreter at the same path. Bump the patch version here when Python releases one.

FROM python:3.11.14-slim-bookworm AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
# Only what `pip install .` needs: tests, docs and the chart never reach the image.
COPY pyproject.toml README.md ./
COPY proxy ./proxy
# [speed]: uvloop, which `aifw serve` runs on when it is installed
RUN /opt/venv/bin/pip install --no-cache-dir '.[speed]'

FROM python:3.11.14-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="aifw" \
      org.opencontainers.image.description="Transparent OpenAI-compatible AI firewall" \
      org.opencontainers.image.licenses="Apache-2.0"
# A fixed numeric uid lets Kubernetes' runAsNonRoot verify the user without a passwd lookup.
RUN groupadd --system --gid 10001 aifw \
    && useradd --system --uid 10001 --gid aifw --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin aifw \
    && mkdir -p /var/lib/aifw/audit /opt/aifw/cache \
    && chown 10001:10001 /var/lib/aifw/audit /opt/aifw/cache \
    && chmod 0700 /opt/aifw/cache
COPY --from=builder /opt/venv /opt/venv
# policies/ and rules/ side by side under the working directory, as in the repository, so
# relative rule paths in the bundled policies resolve the same way as in a checkout.
WORKDIR /opt/aifw
COPY policies ./policies
COPY rules ./rules
# PYTHONDONTWRITEBYTECODE: the root filesystem is read-only at run time.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    AIFW_POLICY=/opt/aifw/policies/default.yaml \
    AIFW_AUDIT_DIR=/var/lib/aifw/audit \
    AIFW_CACHE_DIR=/opt/aifw/cache \
    AIFW_LOG_FORMAT=json
USER 10001:10001
# A broken bundled policy fails the build instead of shipping. Provider keys come from the
# runtime environment: the check needs them referenced, not set (it warns that they are not). The check
# also leaves the compiled rule sets in AIFW_CACHE_DIR, so a container starts without compiling
# them (the root filesystem is read-only at run time: the cache is only read then).
RUN aifw policy check policies/*.yaml
EXPOSE 8080
VOLUME ["/var/lib/aifw/audit"]
# The slim image has no curl; the interpreter is already there.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["aifw"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
