import { DEFAULT_POLICY, type Policy } from "../../../src/core/policy.js";
import type { PolicySource } from "../../../src/policy/source.js";

// A PolicySource that holds what the test sets: always valid, listeners told on each set.

export class StaticPolicySource implements PolicySource {
  private readonly listeners = new Set<(p: Policy) => void>();
  constructor(private policy: Policy = DEFAULT_POLICY) {}
  current(): Policy {
    return this.policy;
  }
  valid(): boolean {
    return true;
  }
  set(policy: Policy): void {
    this.policy = policy;
    for (const l of this.listeners) l(policy);
  }
  onChange(listener: (policy: Policy) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
}
