// Driving the test chain by hand: anvil's own RPC for mining, the pool and automine.
import { anvilRpc } from '../../src/dev/anvil.ts';

export function anvilDriver(rpcUrl: string) {
  const rpc = <T = unknown>(method: string, params: unknown[] = []) => anvilRpc<T>(rpcUrl, method, params);
  const mine = (blocks = 1) => rpc('anvil_mine', [`0x${blocks.toString(16)}`]);
  return {
    rpc,
    mine,
    latestBlock: async () => Number(BigInt(await rpc<string>('eth_blockNumber'))),
    async inPool(hash: string): Promise<boolean> {
      const pool = await rpc<{ pending: Record<string, Record<string, { hash: string }>> }>('txpool_content');
      return Object.values(pool.pending ?? {}).some((byNonce) =>
        Object.values(byNonce).some((tx) => tx.hash.toLowerCase() === hash.toLowerCase()),
      );
    },
    /** Empty blocks in the background: under automine nothing else would deepen a registration. */
    startMiner(): () => Promise<void> {
      let stopped = false;
      let inFlight: Promise<unknown> = Promise.resolve();
      const timer = setInterval(() => {
        if (!stopped) inFlight = mine().catch(() => {});
      }, 300);
      return async () => {
        stopped = true;
        clearInterval(timer);
        await inFlight;
      };
    },
  };
}
