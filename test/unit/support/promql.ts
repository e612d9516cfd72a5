// The metric names a PromQL expression reads, found by a small lexer rather than a regex over
// the text: label names (in `{...}`, `by (...)`, `on (...)`), functions, aggregations, keywords,
// strings, durations and Grafana variables are all identifiers or look like them, and none of
// them is a metric.

const FUNCTIONS = new Set([
  "abs",
  "absent",
  "absent_over_time",
  "acos",
  "acosh",
  "asin",
  "asinh",
  "atan",
  "atanh",
  "avg_over_time",
  "ceil",
  "changes",
  "clamp",
  "clamp_max",
  "clamp_min",
  "cos",
  "cosh",
  "count_over_time",
  "day_of_month",
  "day_of_week",
  "day_of_year",
  "days_in_month",
  "deg",
  "delta",
  "deriv",
  "exp",
  "floor",
  "histogram_avg",
  "histogram_count",
  "histogram_fraction",
  "histogram_quantile",
  "histogram_stddev",
  "histogram_stdvar",
  "histogram_sum",
  "hour",
  "idelta",
  "increase",
  "irate",
  "label_join",
  "label_replace",
  "last_over_time",
  "ln",
  "log10",
  "log2",
  "mad_over_time",
  "max_over_time",
  "min_over_time",
  "minute",
  "month",
  "pi",
  "predict_linear",
  "present_over_time",
  "quantile_over_time",
  "rad",
  "rate",
  "resets",
  "round",
  "scalar",
  "sgn",
  "sin",
  "sinh",
  "sort",
  "sort_by_label",
  "sort_by_label_desc",
  "sort_desc",
  "sqrt",
  "stddev_over_time",
  "stdvar_over_time",
  "sum_over_time",
  "tan",
  "tanh",
  "time",
  "timestamp",
  "vector",
  "year",
]);
const AGGREGATIONS = new Set([
  "avg",
  "bottomk",
  "count",
  "count_values",
  "group",
  "limitk",
  "limit_ratio",
  "max",
  "min",
  "quantile",
  "stddev",
  "stdvar",
  "sum",
  "topk",
]);
/** Keywords followed by a parenthesised list of label names. */
const LABEL_LIST_KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);
const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end"]);

export class PromqlError extends Error {}

/** Every metric name `expr` selects, in order of appearance (with repeats). */
export function metricNames(expr: string): string[] {
  const names: string[] = [];
  let i = 0;
  const at = (re: RegExp) => {
    re.lastIndex = i;
    const m = re.exec(expr);
    return m ? m[0] : undefined;
  };
  const skipSpace = () => {
    i += at(/\s*/y)?.length ?? 0;
  };
  const fail = (what: string): never => {
    throw new PromqlError(`${what} at offset ${i} of: ${expr}`);
  };

  while (i < expr.length) {
    skipSpace();
    if (i >= expr.length) break;
    const ch = expr[i] as string;
    if (ch === '"' || ch === "'" || ch === "`") {
      i += (at(ch === "`" ? /`[^`]*`/y : ch === '"' ? /"(?:[^"\\]|\\.)*"/y : /'(?:[^'\\]|\\.)*'/y) ?? fail("unterminated string")).length;
    } else if (ch === "{") {
      i = labelMatchers(i, names);
    } else if (ch === "[") {
      i += (at(/\[[^\]]*\]/y) ?? fail("unterminated range")).length;
    } else if (ch === "$") {
      // Grafana variables: $__rate_interval, ${datasource}, $job.
      i += (at(/\$\{[^}]*\}|\$\w+/y) ?? fail("bad variable")).length;
    } else if (/[0-9.]/.test(ch)) {
      i += (at(/(?:0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(?:ms|[smhdwy])?/y) ?? fail("bad number")).length;
    } else if (/[A-Za-z_:]/.test(ch)) {
      identifier();
    } else if (/[()+\-*/%^=!<>,@]/.test(ch)) {
      i += 1;
    } else {
      fail(`unexpected ${JSON.stringify(ch)}`);
    }
  }
  return names;

  /** A keyword, an aggregation or function (with its arguments next), or a metric name. */
  function identifier(): void {
    const word = at(/[A-Za-z_:][A-Za-z0-9_:]*/y) as string;
    i += word.length;
    skipSpace();
    const call = expr[i] === "(";
    if (LABEL_LIST_KEYWORDS.has(word)) {
      if (call) i = labelList(i);
    } else if (KEYWORDS.has(word.toLowerCase())) {
      // an operator or a modifier
    } else if (AGGREGATIONS.has(word) || FUNCTIONS.has(word)) {
      if (!call && !AGGREGATIONS.has(word)) fail(`function ${word} without arguments`);
    } else if (call) {
      fail(`unknown function ${word}`);
    } else {
      names.push(word);
    }
  }

  /** `{a="x", __name__="m"}`: label names and values, of which only `__name__="m"` names a metric. */
  function labelMatchers(start: number, into: string[]): number {
    i = start + 1;
    for (;;) {
      skipSpace();
      if (expr[i] === "}") return i + 1;
      const label = at(/[A-Za-z_][A-Za-z0-9_]*|"(?:[^"\\]|\\.)*"/y) ?? fail("bad label name");
      i += label.length;
      skipSpace();
      const op = at(/=~|!~|!=|=/y) ?? fail("bad label matcher");
      i += op.length;
      skipSpace();
      const value = at(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/y) ?? fail("bad label value");
      i += value.length;
      if (label === "__name__" && op === "=") into.push(value.slice(1, -1));
      skipSpace();
      if (expr[i] === ",") i += 1;
      else if (expr[i] !== "}") fail("expected , or }");
    }
  }

  /** `(le, webhook)` after by/without/on/ignoring/group_left/group_right: label names only. */
  function labelList(start: number): number {
    const list = at(/\(\s*(?:[A-Za-z_][A-Za-z0-9_]*\s*(?:,\s*[A-Za-z_][A-Za-z0-9_]*\s*)*,?\s*)?\)/y) ?? fail("bad label list");
    return start + list.length;
  }
}
