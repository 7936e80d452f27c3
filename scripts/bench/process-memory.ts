// Peak resident memory of another process (the worker), from Linux's /proc/<pid>/status.
import { readFileSync, writeFileSync } from 'node:fs';

export interface ProcessMemory {
  /** VmHWM: the peak RSS since start or since the last resetPeak. */
  peakMb: number;
  rssMb: number;
}

function kbField(status: string, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(status);
  if (!m) throw new Error(`/proc status has no ${field} (not Linux?)`);
  return Number(m[1]);
}

export function readProcessMemory(pid: number): ProcessMemory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const toMb = (kb: number) => Math.round((kb / 1024) * 10) / 10;
  return { peakMb: toMb(kbField(status, 'VmHWM')), rssMb: toMb(kbField(status, 'VmRSS')) };
}

/**
 * Resets the process's peak RSS to its current RSS ("5" to clear_refs, Linux ≥ 4.0), so a
 * scenario's peak is not the start-up's (bundling the workflows). False when the kernel refuses.
 */
export function resetPeak(pid: number): boolean {
  try {
    writeFileSync(`/proc/${pid}/clear_refs`, '5');
    return true;
  } catch {
    return false;
  }
}
