/**
 * A histogram counted in typed arrays, one series per value of one label.
 * prom-client's observe() hashes its label object on every call, which costs
 * about as much as answering a cached DNS query or forwarding a gateway
 * request, so the hot path only bumps a bucket and the exposition is produced
 * at scrape time in prom-client's metric shape (what
 * `registry.registerMetric` reads: name, help, type, get, reset).
 */

export interface HistogramSeries {
  readonly labelValue: string
  /** Per bucket, not cumulative; the last one is +Inf. */
  readonly counts: Float64Array
  sum: number
}

interface MetricValue { metricName: string, labels: Record<string, string | number>, value: number }

export class LocalHistogram {
  readonly name: string
  readonly help: string
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly labelNames: readonly string[]
  readonly #buckets: readonly number[]
  readonly #series = new Map<string, HistogramSeries>()

  constructor (name: string, help: string, labelName: string, buckets: readonly number[]) {
    this.name = name
    this.help = help
    this.labelNames = [labelName]
    this.#buckets = buckets
  }

  /** The series of one label value, made on first use; keep it to observe without a lookup. */
  series (labelValue: string): HistogramSeries {
    let s = this.#series.get(labelValue)
    if (s === undefined) {
      s = { labelValue, counts: new Float64Array(this.#buckets.length + 1), sum: 0 }
      this.#series.set(labelValue, s)
    }
    return s
  }

  observe (series: HistogramSeries, value: number): void {
    const buckets = this.#buckets
    let b = 0
    while (b < buckets.length && value > (buckets[b] as number)) b++
    series.counts[b] = (series.counts[b] as number) + 1
    series.sum += value
  }

  async get (): Promise<{ name: string, help: string, type: string, aggregator: string, values: MetricValue[] }> {
    const values: MetricValue[] = []
    const label = this.labelNames[0] as string
    for (const s of this.#series.values()) {
      let acc = 0
      for (let b = 0; b <= this.#buckets.length; b++) {
        acc += s.counts[b] as number
        values.push({ metricName: `${this.name}_bucket`, labels: { le: b < this.#buckets.length ? this.#buckets[b] as number : '+Inf', [label]: s.labelValue }, value: acc })
      }
      values.push({ metricName: `${this.name}_sum`, labels: { [label]: s.labelValue }, value: s.sum })
      values.push({ metricName: `${this.name}_count`, labels: { [label]: s.labelValue }, value: acc })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  reset (): void {
    for (const s of this.#series.values()) {
      s.counts.fill(0)
      s.sum = 0
    }
  }
}
