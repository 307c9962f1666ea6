# aifw container image. Build from the repository root:
#   docker build -t aifw:0.1.0 .
# Run with a read-only root filesystem; /tmp and the audit dir are the only writable paths:
#   docker run --rm -p 8080:8080 --read-only --tmpfs /tmp \
#     -v aifw-audit:/var/lib/aifw/audit aifw:0.1.0
# Reproducible: every stage uses the same base, pinned by tag and by the digest of its
# multi-architecture index (so the virtualenv copied between stages finds the same interpreter
# at the same path), and every Python package comes from a lock file with hashes (`make lock`
# regenerates both lock files; docs/deployment.md says how to move the base).

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python -m venv /opt/venv
# The runtime dependencies, the [speed] extra (uvloop) and the build backend, exactly as locked:
# pip refuses any file whose hash is not in the lock, and resolves nothing itself.
COPY requirements.lock ./
RUN /opt/venv/bin/pip install --no-cache-dir --require-hashes --no-deps -r requirements.lock
# Only what `pip install .` needs: tests, docs and the chart never reach the image.
COPY pyproject.toml README.md ./
COPY proxy ./proxy
# The project itself, built with the locked setuptools; its dependencies are all in place.
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --no-build-isolation .

# The SBOM: CycloneDX JSON of exactly what the lock installed, made by a locked tool in a stage
# of its own, so the tool never reaches the image.
FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS sbom
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
WORKDIR /sbom
COPY requirements-sbom.lock requirements.lock pyproject.toml ./
RUN python -m venv /opt/sbom \
    && /opt/sbom/bin/pip install --no-cache-dir --require-hashes --no-deps -r requirements-sbom.lock \
    && /opt/sbom/bin/cyclonedx-py requirements --pyproject pyproject.toml --output-reproducible \
       --of JSON -o /sbom/aifw.cdx.json requirements.lock

FROM python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d AS runtime
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
# The bill of materials travels with the image (also: docker cp, or a registry attestation).
COPY --from=sbom /sbom/aifw.cdx.json /opt/aifw/sbom.cdx.json
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
    AIFW_RULES_DIR=/opt/aifw/rules \
    AIFW_AUDIT_DIR=/var/lib/aifw/audit \
    AIFW_CACHE_DIR=/opt/aifw/cache \
    AIFW_LOG_FORMAT=json
USER 10001:10001
# A broken bundled policy fails the build instead of shipping. Provider keys come from the
# runtime environment: the check needs them referenced, not set (it warns that they are not). With
# --prepare the check also leaves the compiled rule sets and their prefilters in AIFW_CACHE_DIR, so
# a container starts without compiling them (the root filesystem is read-only at run time: the
# cache is only read then).
RUN aifw policy check --prepare policies/*.yaml
EXPOSE 8080
VOLUME ["/var/lib/aifw/audit"]
# The slim image has no curl; the interpreter is already there.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
ENTRYPOINT ["aifw"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080"]
