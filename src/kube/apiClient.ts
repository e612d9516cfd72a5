import {
  createConfiguration,
  ServerConfiguration,
  type Configuration,
  type KubeConfig,
  type RequestContext,
  type SecurityAuthentication,
} from "@kubernetes/client-node";
import { createHash } from "node:crypto";
import https from "node:https";

// client-node's KubeConfig gives every request a new https.Agent: a TLS handshake per promotion,
// position, Event and lease renewal (docs/performance.md). Here the kubeconfig still decides the
// headers and the TLS material, and requests with the same material share one keep-alive agent.

/** A typed client-node API over `kc` whose requests reuse their connections. */
export function makeKeepAliveClient<T>(kc: KubeConfig, api: new (config: Configuration) => T): T {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error("the kubeconfig has no current cluster");
  return new api(
    createConfiguration({
      baseServer: new ServerConfiguration(cluster.server, {}),
      authMethods: { default: new KeepAliveAuthentication(kc) },
    }),
  );
}

const MAX_SOCKETS = 8;

class KeepAliveAuthentication implements SecurityAuthentication {
  private agent?: { key: string; agent: https.Agent };

  constructor(private readonly kc: KubeConfig) {}

  getName(): string {
    return "kubeconfig authentication with keep-alive connections";
  }

  async applySecurityAuthentication(context: RequestContext): Promise<void> {
    // Headers (tokens, exec plugins, basic auth) are the kubeconfig's, fresh per request.
    await this.kc.applySecurityAuthentication(context);
    // A proxy needs the kubeconfig's own agent (it knows the proxy kinds); keep it then.
    if (this.kc.getCurrentCluster()?.proxyUrl) return;
    context.setAgent(await this.sharedAgent());
  }

  private async sharedAgent(): Promise<https.Agent> {
    const cluster = this.kc.getCurrentCluster();
    const tls: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(tls);
    const options: https.AgentOptions = {
      keepAlive: true,
      maxSockets: MAX_SOCKETS,
      ca: tls.ca,
      cert: tls.cert,
      key: tls.key,
      pfx: tls.pfx,
      passphrase: tls.passphrase,
      ...(cluster?.skipTLSVerify ? { rejectUnauthorized: false } : tls.rejectUnauthorized !== undefined ? { rejectUnauthorized: tls.rejectUnauthorized } : {}),
      ...(cluster?.tlsServerName ? { servername: cluster.tlsServerName } : {}),
    };
    // Rotated client certificates or CA files get a new agent; the old one's sockets close.
    const key = fingerprint(options);
    if (this.agent?.key !== key) {
      this.agent?.agent.destroy();
      this.agent = { key, agent: new https.Agent(options) };
    }
    return this.agent.agent;
  }
}

function fingerprint(o: https.AgentOptions): string {
  const h = createHash("sha256");
  for (const v of [o.ca, o.cert, o.key, o.pfx, o.passphrase, o.rejectUnauthorized, o.servername]) {
    h.update(v === undefined ? "-" : Buffer.isBuffer(v) ? v : JSON.stringify(v)).update("\u0000");
  }
  return h.digest("hex");
}
