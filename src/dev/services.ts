import type { StackService } from './stack.ts';
import { simulatorService } from '../simulator/stack-service.ts';

/** Services the local stack starts beside Temporal and the chain. */
export function defaultServices(): StackService[] {
  return [simulatorService()];
}
