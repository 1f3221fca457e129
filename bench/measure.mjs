// The closed-loop measurement the bench's child scripts share: `callers` loops each awaiting
// `call(n)` until `ms` have passed; the rate, and the process's CPU (every thread: Node's,
// tokio's) per call.
import { performance } from 'node:perf_hooks'

export async function measure(call, callers, ms) {
  let n = 0
  let done = 0
  const end = performance.now() + ms
  const cpuBefore = process.cpuUsage()
  const started = performance.now()
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < end) {
        await call(n++)
        done++
      }
    }),
  )
  const elapsed = performance.now() - started
  const cpu = process.cpuUsage(cpuBefore)
  return { qps: (done / elapsed) * 1000, cpuUs: (cpu.user + cpu.system) / done }
}
