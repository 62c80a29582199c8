// Wall-clock ms with µs resolution, comparable with the kernel's packet timestamps.
// performance.now() is monotonic with µs resolution but drifts from the wall clock the kernel
// stamps packets with (NTP slews it); Date.now() is the wall clock, truncated to the ms. The
// offset between them is re-estimated once a second as the largest of the last samples: each
// sample is the true offset minus up to 1 ms of truncation, so the largest is within tens of µs.
const OFFSET_SAMPLES = 32;
const samples: number[] = [];
let offset = performance.timeOrigin;
let sampler: NodeJS.Timeout | undefined;

function sampleOffset(): void {
  samples.push(Date.now() - performance.now());
  if (samples.length > OFFSET_SAMPLES) samples.shift();
  offset = Math.max(...samples);
}

export function wallNow(): number {
  if (!sampler) {
    sampleOffset();
    sampler = setInterval(sampleOffset, 1000);
    sampler.unref();
  }
  return offset + performance.now();
}
