import type { StackService } from './stack.ts';

/** Services the local stack starts beside Temporal and the chain. The simulator joins here. */
export function defaultServices(): StackService[] {
  return [];
}
