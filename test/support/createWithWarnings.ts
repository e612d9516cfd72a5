import { request as httpsRequest, type RequestOptions } from "node:https";
import type { ControlPlane } from "./controlPlane.js";
import { VELERO_GROUP, VELERO_VERSION, type VeleroObject } from "./objects.js";

// A create through the API server read as raw HTTP: the client library drops the `Warning`
// headers the admission webhooks answer with, and those are what the tests check.

export interface CreateAnswer {
  readonly status: number;
  readonly body: string;
  /** Each `Warning` header as sent (`299 - "text"`; warningText reads the text). */
  readonly warnings: string[];
}

/** POSTs a Velero object (`plural`: backups, restores) and returns the answer with its warnings. */
export async function createWithWarnings(cp: ControlPlane, namespace: string, plural: string, body: VeleroObject): Promise<CreateAnswer> {
  const server = cp.kubeConfig.getCurrentCluster()?.server as string;
  const url = new URL(`/apis/${VELERO_GROUP}/${VELERO_VERSION}/namespaces/${namespace}/${plural}`, server);
  const opts: RequestOptions = {
    method: "POST",
    hostname: url.hostname,
    port: url.port,
    path: url.pathname,
    headers: { "content-type": "application/json" },
    timeout: 20_000,
  };
  await cp.kubeConfig.applyToHTTPSOptions(opts);
  return new Promise((resolve, reject) => {
    const req = httpsRequest(opts, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => {
        text += d;
      });
      res.on("end", () => {
        const warnings: string[] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) {
          if (res.rawHeaders[i]?.toLowerCase() === "warning") warnings.push(res.rawHeaders[i + 1] as string);
        }
        resolve({ status: res.statusCode ?? 0, body: text, warnings });
      });
    });
    req.on("timeout", () => req.destroy(new Error("create timed out")));
    req.on("error", reject);
    req.end(JSON.stringify(body));
  });
}

/** The text of a warning header: `299 - "text"`. */
export const warningText = (h: string) => /^299 - "(.*)"$/.exec(h)?.[1]?.replace(/\\"/g, '"') ?? h;
