// Loaded with `node --import` into a dfs client the bench runs: when the process exits, its peak
// resident set size (VmHWM, a high-water mark kept by the kernel) and the CPU time it used (user +
// system, seconds) are written to $BENCH_RSS_FILE as "BYTES SECONDS".
// Reading /proc/PID/status from outside would miss the peak if it came in the last moments.

import {readFileSync, writeFileSync} from 'node:fs'

const target = process.env.BENCH_RSS_FILE
if (target) {
  // The variable is for this process only, not for anything it starts.
  delete process.env.BENCH_RSS_FILE
  process.on('exit', () => {
    try {
      const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'))
      const bytes = match ? Number(match[1]) * 1024 : process.resourceUsage().maxRSS * 1024
      const {user, system} = process.cpuUsage()
      writeFileSync(target, `${bytes} ${(user + system) / 1e6}`)
    } catch {
      // The bench reports the figure as missing.
    }
  })
}
