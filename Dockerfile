# Build: npm ci + tsc; run: production dependencies only, as a non-root user, read-only root
# filesystem friendly (nothing is written at run time; the CA and serving certificate live in
# memory or come from a mounted directory). Node 24: an LTS line supported until April 2028, and
# within package.json's engines (what the dependencies declare; README, "Node.js versions").
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts
COPY tsconfig.json ./
COPY src ./src
RUN npx tsc -p tsconfig.json --rootDir . --outDir dist --noEmit false \
 && npm prune --omit=dev

FROM node:24-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY package.json ./
USER 65532:65532
EXPOSE 8443
# No --enable-source-maps: it keeps every module's map in the heap (6.6 MiB at 100k pods,
# docs/performance.md). The maps ship; NODE_OPTIONS=--enable-source-maps turns them on.
# --no-memory-reducer: V8's reducer collects a quiet heap without keeping the maps that only a
# review's objects use, which throws away the webhook's optimized code, so the next burst starts
# cold (docs/performance.md, "A burst after a quiet minute"; NODE_OPTIONS refuses the flag).
# tools/gate-image.sh, the benches and the tests read this line (test/support/imageRuntime.ts).
ENTRYPOINT ["node", "--no-memory-reducer", "dist/src/cli/main.js"]
CMD ["serve"]
