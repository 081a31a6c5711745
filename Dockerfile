# syntax=docker/dockerfile:1

# Node.js 24 (LTS, supported until April 2028): Node 20 reached its end of life in April 2026, and
# some production dependencies (OpenTelemetry, cookie) now ask for Node 22 or later.
# Build: compile TypeScript with the full dependency tree.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json

# Production dependencies only, without dev tools.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts

# Runtime: compiled code, production dependencies, the shipped config; runs as a non-root user.
FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production \
    CONFIG_DIR=/app/config \
    OUTBOX_DIR=/app/var/outbox \
    WEBHOOK_SPOOL_DIR=/app/var/spool/webhooks
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY config ./config
RUN mkdir -p /app/var/outbox /app/var/spool/webhooks && chown -R node:node /app/var \
    && chmod 700 /app/var/spool/webhooks
USER node
EXPOSE 8080
# Probes the port the worker listens on (HTTP_PORT, 8080 when unset or empty).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.HTTP_PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["node", "dist/cli.js"]
CMD ["worker"]
