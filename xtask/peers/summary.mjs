// A figure's summary and line, as `cli/src/bench/figures.rs` writes them: the median of an even
// count is the mean of the two middle values; times in ms with 3 decimals.

export function summary(samples) {
  if (samples.length === 0) throw new Error('a figure needs at least one run');
  const sorted = [...samples].sort((a, b) => a - b);
  const n = sorted.length;
  const median = n % 2 === 1 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  return { median, min: sorted[0], max: sorted[n - 1], runs: n };
}

export function figureLine(name, samples) {
  const { median, min, max, runs } = summary(samples);
  return `figure=${name} median=${median.toFixed(3)} min=${min.toFixed(3)} ` +
    `max=${max.toFixed(3)} runs=${runs} unit=ms`;
}

// `warmup` unmeasured then `runs` measured awaits of `body`, in ms of performance.now().
export async function measure(warmup, runs, body) {
  const samples = [];
  for (let i = 0; i < warmup + runs; i += 1) {
    const started = performance.now();
    await body();
    const elapsed = performance.now() - started;
    if (i >= warmup) samples.push(elapsed);
  }
  return samples;
}
