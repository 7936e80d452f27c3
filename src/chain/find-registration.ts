import { getAbiItem, BaseError, HttpRequestError, TimeoutError, type Address, type Client, type Hex } from 'viem';
import { setTimeout as sleep } from 'node:timers/promises';
import { getBlockNumber, getLogs } from 'viem/actions';
import { dstackAppAbi } from './dstack-app-abi.ts';
import { ChainError, toChainError, withChainErrors } from './errors.ts';
import { normalizeComposeHash, parseAddress, parseBlockNumber, toSafeNumber } from './inputs.ts';

export interface FindRegistrationParams {
  app: Address;
  composeHash: string;
  /** Where the scan stops (inclusive): the app's deployment block, or 0. */
  fromBlock: number;
  /** Where it starts (inclusive); default: the latest block. */
  toBlock?: number;
  /** Blocks per eth_getLogs call; default 2000. Halved when the node refuses a range (not when it is busy). */
  chunkSize?: number;
  /** Before each pause when the node rate-limits us, e.g. to heartbeat. */
  onBackoff?: (backoff: { pauseMs: number; attempt: number }) => void;
  /** First pause after a rate limit (doubling, at most 5 s); default 250 ms. */
  busyPauseMs?: number;
  /** After each chunk, e.g. to heartbeat. */
  onProgress?: (progress: { scannedFrom: number; scannedTo: number; remaining: number }) => void;
  signal?: AbortSignal;
}

export interface RegistrationLocation {
  txHash: Hex;
  blockNumber: number;
  blockHash: Hex;
  logIndex: number;
}

/**
 *  - found: the newest ComposeHashAdded for the hash (confirm its block before use).
 *  - not-found: no event for the hash in [scannedFrom, scannedTo].
 *  - removed: the newest event for the hash is a ComposeHashRemoved (`removedAt`): the
 *    hash is not allowed now, whatever an older ComposeHashAdded says.
 */
export type FindRegistrationResult =
  | ({ found: true } & RegistrationLocation)
  | { found: false; reason: 'not-found'; scannedFrom: number; scannedTo: number }
  | { found: false; reason: 'removed'; scannedFrom: number; scannedTo: number; removedAt: RegistrationLocation };

const EVENTS = [
  getAbiItem({ abi: dstackAppAbi, name: 'ComposeHashAdded' }),
  getAbiItem({ abi: dstackAppAbi, name: 'ComposeHashRemoved' }),
] as const;

/**
 * Finds the transaction that registered a compose hash already allowed on the app. The
 * event's argument is not indexed, so logs are fetched by address and event signature
 * and matched on their data, newest range first, in bounded chunks.
 */
export async function findRegistration(client: Client, params: FindRegistrationParams): Promise<FindRegistrationResult> {
  const app = parseAddress(params.app, 'app');
  const composeHash = normalizeComposeHash(params.composeHash);
  const floor = parseBlockNumber(params.fromBlock, 'fromBlock');
  let chunk = BigInt(params.chunkSize ?? 2000);
  if (chunk < 1n || !Number.isSafeInteger(params.chunkSize ?? 2000))
    throw new ChainError('INVALID_INPUT', 'chunkSize must be a positive integer');
  const top =
    params.toBlock !== undefined
      ? parseBlockNumber(params.toBlock, 'toBlock')
      : await withChainErrors('reading the latest block number', () => getBlockNumber(client, { cacheTime: 0 }));
  if (top < floor) throw new ChainError('INVALID_INPUT', `toBlock ${top} is below fromBlock ${floor}`);

  let to = top;
  let busy = 0;
  while (to >= floor) {
    params.signal?.throwIfAborted();
    const from = to - chunk + 1n > floor ? to - chunk + 1n : floor;
    let logs;
    try {
      logs = await getLogs(client, { address: app, events: EVENTS, fromBlock: from, toBlock: to, strict: true });
      busy = 0;
    } catch (err) {
      const kind = classifyLogsError(err);
      // A busy node refuses every range alike: shrinking would only multiply the calls
      // that are being refused. Wait, then ask for the same range again.
      if (kind === 'busy' && busy < BUSY_RETRIES) {
        const pauseMs = Math.min(BUSY_MAX_PAUSE_MS, (params.busyPauseMs ?? BUSY_FIRST_PAUSE_MS) * 2 ** busy++);
        params.onBackoff?.({ pauseMs, attempt: busy });
        await sleep(pauseMs, undefined, params.signal ? { signal: params.signal } : undefined);
        continue;
      }
      // Providers cap ranges and result sizes with differing words; a smaller range is
      // the one remedy that works everywhere. Below one block there is nothing to shrink.
      if (kind === 'range' && chunk > 1n) {
        chunk = (chunk + 1n) / 2n;
        continue;
      }
      throw toChainError(err, `reading ComposeHash logs of ${app} in block ${to}`);
    }
    // Newest first: the last matching event decides whether the hash stands.
    for (let i = logs.length - 1; i >= 0; i--) {
      const log = logs[i]!;
      if (log.removed || log.args.composeHash.toLowerCase() !== composeHash) continue;
      if (log.transactionHash === null || log.blockNumber === null || log.blockHash === null || log.logIndex === null) continue;
      const at: RegistrationLocation = {
        txHash: log.transactionHash,
        blockNumber: toSafeNumber(log.blockNumber, 'block number'),
        blockHash: log.blockHash,
        logIndex: log.logIndex,
      };
      if (log.eventName === 'ComposeHashAdded') return { found: true, ...at };
      return {
        found: false,
        reason: 'removed',
        scannedFrom: toSafeNumber(from, 'block'),
        scannedTo: toSafeNumber(top, 'block'),
        removedAt: at,
      };
    }
    params.onProgress?.({
      scannedFrom: toSafeNumber(from, 'block'),
      scannedTo: toSafeNumber(top, 'block'),
      remaining: toSafeNumber(from - floor, 'block'),
    });
    if (from === floor) break;
    to = from - 1n;
  }
  return { found: false, reason: 'not-found', scannedFrom: toSafeNumber(floor, 'block'), scannedTo: toSafeNumber(top, 'block') };
}

const BUSY_RETRIES = 6;
const BUSY_FIRST_PAUSE_MS = 250;
const BUSY_MAX_PAUSE_MS = 5000;

const RATE_LIMIT_WORDS =
  /rate.?limit|too many requests|exceeded .*(capacity|throughput|quota|credits)|request limit|daily limit|compute units/i;

/**
 * Why a getLogs call failed, for what to do next:
 *  - busy: rate limited (HTTP 429, JSON-RPC 429 / -32007, or the words of one): back off;
 *  - down: timeout, 5xx, no connection: give up here, the activity's retry waits longer;
 *  - range: anything else the node answered (a range or result-size cap, in whatever words): shrink.
 */
export function classifyLogsError(err: unknown): 'busy' | 'down' | 'range' {
  const message = err instanceof Error ? `${err.message} ${(err as { details?: unknown }).details ?? ''}` : String(err);
  if (!(err instanceof BaseError)) return RATE_LIMIT_WORDS.test(message) ? 'busy' : 'range';
  if (err.walk((e) => e instanceof TimeoutError)) return 'down';
  const http = err.walk((e) => e instanceof HttpRequestError) as HttpRequestError | null;
  if (http?.status === 429) return 'busy';
  if (http !== null && (http.status === undefined || http.status >= 500)) return 'down';
  const code = (err.walk((e) => typeof (e as { code?: unknown }).code === 'number') as { code?: number } | null)?.code;
  if (code === 429 || code === -32007) return 'busy';
  // -32005 means "limit exceeded" for ranges and rates alike; the words tell which.
  return RATE_LIMIT_WORDS.test(message) ? 'busy' : 'range';
}
