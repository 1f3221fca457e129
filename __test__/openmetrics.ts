// Parses Prometheus/OpenMetrics exposition text with the Prometheus project's own parser
// (prometheus_client's strict OpenMetrics parser, in Python). When python3 or the module is
// missing the specs that need it are skipped outside CI and fail in CI (.ci/run installs it).
import { spawnSync } from 'node:child_process'

export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}
export interface Family {
  name: string
  type: string
  samples: Sample[]
}

const PARSER = `
import json, math, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    out.append({"name": f.name, "type": f.type, "samples": [
        {"name": s.name, "labels": s.labels, "value": s.value if math.isfinite(s.value) else str(s.value)}
        for s in f.samples]})
print(json.dumps(out))
`

export function openMetricsParserAvailable(): boolean {
  const probe = spawnSync('python3', ['-c', 'import prometheus_client.openmetrics.parser'], { encoding: 'utf8' })
  return probe.status === 0
}

/** The families of `text`; throws with the parser's message when the text is not valid. */
export function parseOpenMetrics(text: string): Family[] {
  const run = spawnSync('python3', ['-c', PARSER], { input: text, encoding: 'utf8' })
  if (run.status !== 0) throw new Error(`OpenMetrics parser rejected the text: ${run.stderr}`)
  return JSON.parse(run.stdout)
}

/** The value of the one sample named `name` whose labels include `labels`. */
export function sampleValue(families: Family[], name: string, labels: Record<string, string> = {}): number | undefined {
  for (const family of families) {
    for (const sample of family.samples) {
      if (sample.name !== name) continue
      if (Object.entries(labels).every(([k, v]) => sample.labels[k] === v)) return sample.value
    }
  }
  return undefined
}
