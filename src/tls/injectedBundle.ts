import { createRequester, statusOf, type KubeAccess, type Requester } from "../kube/http.js";
import { webhookConfigurationPath, type WebhookConfiguration } from "./caBundle.js";
import type { Logger } from "../logging/logger.js";
import type { Metrics } from "../metrics/metrics.js";
import { bundleVerifies } from "./certs.js";
import type { TlsSource } from "./source.js";

// With an injected caBundle (OpenShift's service-ca operator, cert-manager's cainjector) the
// gate never writes the webhook configurations: it only reads them, at start, after each
// certificate reload and every `intervalMs`, and says when a webhook's caBundle does not verify
// the certificate it serves (the API server would then refuse the calls: CREATE fails open,
// promotions are refused). It says so in a log line per change and in
// backup_gate_ca_bundle_verified (0).

export interface InjectedBundleCheckOptions {
  readonly kubeConfig: KubeAccess;
  readonly mutatingName: string;
  readonly validatingName: string;
  /** Default 60 s. */
  readonly intervalMs?: number;
  readonly log?: Logger;
  readonly metrics?: Pick<Metrics, "caBundleVerified">;
}

/** One webhook's caBundle that does not verify the served certificate, and why. */
export interface BundleProblem {
  readonly configuration: string;
  readonly webhook: string;
  readonly problem: string;
}

export class InjectedBundleCheck {
  private readonly api: Requester;
  private timer?: NodeJS.Timeout;
  private unsubscribe?: () => void;
  private last = "";
  private chain: Promise<readonly BundleProblem[]> = Promise.resolve([]);

  constructor(private readonly o: InjectedBundleCheckOptions) {
    this.api = createRequester(o.kubeConfig);
  }

  /** Checks now, after every reload of `tls` and every interval; never writes. */
  attach(tls: TlsSource): Promise<readonly BundleProblem[]> {
    this.unsubscribe = tls.onRotate(() => {
      void this.check(tls);
    });
    this.timer = setInterval(() => {
      void this.check(tls);
    }, this.o.intervalMs ?? 60_000);
    this.timer.unref();
    return this.check(tls);
  }

  stop(): void {
    this.unsubscribe?.();
    clearInterval(this.timer);
  }

  /** The webhooks whose caBundle does not verify what `tls` serves now (empty: all verify). */
  check(tls: TlsSource): Promise<readonly BundleProblem[]> {
    this.chain = this.chain.then(() => this.checkOnce(tls.current().cert));
    return this.chain;
  }

  private async checkOnce(cert: string): Promise<readonly BundleProblem[]> {
    let problems: BundleProblem[];
    try {
      const [m, v] = await Promise.all([
        this.api.send("GET", webhookConfigurationPath("MutatingWebhookConfiguration", this.o.mutatingName)) as Promise<WebhookConfiguration>,
        this.api.send("GET", webhookConfigurationPath("ValidatingWebhookConfiguration", this.o.validatingName)) as Promise<WebhookConfiguration>,
      ]);
      problems = [
        ...problemsOf(`MutatingWebhookConfiguration ${this.o.mutatingName}`, m.webhooks ?? [], cert),
        ...problemsOf(`ValidatingWebhookConfiguration ${this.o.validatingName}`, v.webhooks ?? [], cert),
      ];
    } catch (e) {
      const code = statusOf(e);
      const why = code !== undefined ? `HTTP ${code}` : (e as Error).message;
      this.o.log?.warn({ error: why }, "cannot read the webhook configurations to check the injected caBundle");
      return [];
    }
    this.o.metrics?.caBundleVerified.set(problems.length === 0 ? 1 : 0);
    const summary = JSON.stringify(problems);
    if (summary !== this.last) {
      this.last = summary;
      if (problems.length) {
        this.o.log?.error(
          { problems },
          "the injected caBundle does not verify the served certificate: the API server cannot call these webhooks until the injector (service-ca, cert-manager cainjector) updates it",
        );
      } else {
        this.o.log?.info("the injected caBundle of every webhook verifies the served certificate");
      }
    }
    return problems;
  }
}

function problemsOf(configuration: string, webhooks: readonly { name: string; clientConfig: { caBundle?: string } }[], cert: string): BundleProblem[] {
  return webhooks.flatMap((w) => {
    const bundle = w.clientConfig.caBundle ? Buffer.from(w.clientConfig.caBundle, "base64").toString("utf8") : "";
    const problem = bundle ? bundleVerifies(cert, bundle) : "the caBundle is empty (not injected yet?)";
    return problem ? [{ configuration, webhook: w.name, problem }] : [];
  });
}
