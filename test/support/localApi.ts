import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { KubeAccess } from "../../src/kube/http.js";

/** A plain-HTTP server on loopback that answers as a test says, and a KubeAccess pointing at it. */
export interface LocalApi {
  readonly kc: KubeAccess;
  close(): Promise<void>;
}

/** For what only a misbehaving server can send; the real API server's answers are in test/integration. */
export async function startLocalApi(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<LocalApi> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  return {
    kc: { getCurrentCluster: () => ({ server: `http://127.0.0.1:${port}` }), applyToHTTPSOptions: async () => {} },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
