# baoxue: one image with every service binary and bxctl. Built with cmake on Debian 12; the runtime
# stage carries only the shared libraries, and runs as an unprivileged user.
#   docker build -t baoxue .
#   docker run --rm baoxue bxctl --help

FROM debian:12 AS build
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      librdkafka-dev libhiredis-dev libpq-dev libcjson-dev libmicrohttpd-dev \
      libcurl4-openssl-dev libssl-dev libsodium-dev libxlsxwriter-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
 && cmake --build build
# Collect the binaries (build/services/<name>/<name> and bxctl) and the data files they read.
RUN set -eu; mkdir -p /out/bin /out/share; \
    for f in build/services/*/*; do \
      if [ -f "$f" ] && [ -x "$f" ]; then cp "$f" /out/bin/; fi; \
    done; \
    cp build/tools/bxctl/bxctl /out/bin/; \
    cp -r schemas /out/share/schemas; \
    if [ -d deploy/policy ]; then cp -r deploy/policy /out/share/policy; fi; \
    cp -r services/bx-console/templates /out/share/console-templates; \
    ls -l /out/bin

FROM debian:12 AS runtime
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      librdkafka1 libhiredis0.14 libpq5 libcjson1 libmicrohttpd12 libcurl4 libssl3 \
      libsodium23 libxlsxwriter4 \
      ca-certificates curl tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/baoxue --create-home \
      --shell /usr/sbin/nologin baoxue
COPY --from=build /out/bin/ /usr/local/bin/
COPY --from=build /out/share/ /usr/share/baoxue/
ENV TZ=Asia/Shanghai \
    BX_SQL_DIR=/usr/share/baoxue/schemas/sql \
    BX_SCORE_POLICY=/usr/share/baoxue/policy/score.policy \
    BX_LADDER_POLICY=/usr/share/baoxue/policy/ladder.policy \
    BX_DUTIES_POLICY=/usr/share/baoxue/policy/ladder-duties.policy \
    BX_NOTIFY_TEMPLATES=/usr/share/baoxue/policy/notify.templates \
    BX_CONSOLE_TEMPLATES=/usr/share/baoxue/console-templates
USER baoxue
WORKDIR /var/lib/baoxue
EXPOSE 8080 8443 9100
CMD ["bxctl", "--help"]
