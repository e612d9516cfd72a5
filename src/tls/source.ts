// Serving certificate material and where it comes from (made and renewed here, or files another
// tool writes): the webhook server serves the current material and takes up each rotation.

/** Serving certificate material, replaceable at run time. */
export interface TlsMaterial {
  readonly key: string;
  readonly cert: string;
  /** PEM of the CA the API server must trust (the caBundle). */
  readonly ca: string;
  readonly notAfter: Date;
}

export interface TlsSource {
  current(): TlsMaterial;
  onRotate(listener: (material: TlsMaterial) => void): () => void;
  start(): Promise<void>;
  stop(): Promise<void>;
}
