# syntax=docker/dockerfile:1
# The worker image (the codec server runs from it too): Node 22 LTS on Debian slim, since
# the Temporal core bridge is built against glibc (no Alpine/musl). Build: tsc + the
# prebuilt workflow bundle; run: production dependencies, dist/ and nothing else, as `node`.
ARG NODE_IMAGE=node:22.20.0-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
COPY contracts ./contracts
RUN npm run build

FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# The compose `local` profile's simulator and contract deployment: full dependencies, sources.
FROM build AS devtools
ENV NODE_ENV=development
USER node
CMD ["node", "--import", "tsx", "src/simulator/main.ts"]

FROM ${NODE_IMAGE} AS runtime
ARG VERSION=dev
ARG COMMIT=unknown
LABEL org.opencontainers.image.title="durable-cvm-envs" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
ENV NODE_ENV=production \
    LOG_FORMAT=json \
    METRICS_PORT=9464 \
    WORKER_SHUTDOWN_GRACE_SECONDS=25
WORKDIR /app
COPY --from=prod-deps /app/node_modules ./node_modules
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/dist ./dist
USER node
EXPOSE 9464
# Worker.run() drains on SIGTERM within WORKER_SHUTDOWN_GRACE_SECONDS (25 s < Kubernetes' 30 s).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 CMD ["node", "dist/healthcheck.js"]
CMD ["node", "dist/worker.js"]
