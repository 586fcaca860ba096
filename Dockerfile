# One image for every tickflow service (see docker-compose.yml); the service's command
# line is the container command, e.g. `docker run tickflow produce prices`.
# Node 24 runs the TypeScript sources directly (type stripping): there is no build step.

FROM node:24-slim AS deps
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
# npm ci's postinstall bundles the Kafka client library for a fast start (src/cli/kafka-bundle.ts).
COPY scripts/kafka-bundle.ts ./scripts/
COPY src/cli/kafka-bundle.ts ./src/cli/
# The `node` dependency pins the runtime for npm scripts; in this image the base Node 24
# runs the entrypoint, and the pinned copy is harmless.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

FROM node:24-slim
ENV NODE_ENV=production \
    TICKFLOW_DATA_DIR=/app/.tickflow
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
RUN mkdir -p /app/.tickflow && chown node:node /app/.tickflow
USER node
ENTRYPOINT ["node", "bin/tickflow.js"]
CMD ["--help"]
