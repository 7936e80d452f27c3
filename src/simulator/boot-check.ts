/**
 * What the KMS checks when a CVM boots and asks for its keys, done by the simulator when an
 * update is applied (the CVM's restart). On Phala the authority is the chain at boot time, not
 * at phase 2: a hash removed from the app in between makes the boot, and so the update, fail.
 *
 * With a DstackKms deployed at the KMS's address the simulator asks it, as dstack's KMS does:
 * `isAppAllowed(bootInfo)` (app registered, OS image allowed, then the app's own contract:
 * TCB, compose hash, device). A bare simulator (no KMS contract on chain) asks the app contract
 * for the two things every DstackApp-like contract answers: compose hash and device.
 */
import { createPublicClient, http, type Address, type Hex, type PublicClient } from 'viem';
import { dstackAppAbi } from '../chain/dstack-app-abi.ts';

const BOOT_INFO_ABI = [
  {
    type: 'function',
    name: 'isAppAllowed',
    stateMutability: 'view',
    inputs: [
      {
        name: 'bootInfo',
        type: 'tuple',
        components: [
          { name: 'appId', type: 'address' },
          { name: 'composeHash', type: 'bytes32' },
          { name: 'instanceId', type: 'address' },
          { name: 'deviceId', type: 'bytes32' },
          { name: 'mrAggregated', type: 'bytes32' },
          { name: 'mrSystem', type: 'bytes32' },
          { name: 'osImageHash', type: 'bytes32' },
          { name: 'tcbStatus', type: 'string' },
          { name: 'advisoryIds', type: 'string[]' },
        ],
      },
    ],
    outputs: [
      { name: 'isAllowed', type: 'bool' },
      { name: 'reason', type: 'string' },
    ],
  },
] as const;

export interface BootFacts {
  kmsAddress: string | null;
  /** 40 hex, no 0x. */
  appId: string;
  instanceId: string;
  composeHash: string;
  deviceId: string;
  osImageHash: string | null;
}

const ZERO32 = `0x${'00'.repeat(32)}` as Hex;

function hex32(v: string | null): Hex {
  if (!v) return ZERO32;
  return `0x${v.replace(/^0x/, '').padStart(64, '0')}` as Hex;
}

export class BootChecker {
  readonly #client: PublicClient;

  constructor(rpcUrl: string) {
    this.#client = createPublicClient({ transport: http(rpcUrl, { retryCount: 1, timeout: 10_000 }) });
  }

  /** null when the boot is allowed, else the reason the KMS would give. */
  async refusal(f: BootFacts): Promise<string | null> {
    const app = `0x${f.appId}` as Address;
    const kms = f.kmsAddress as Address | null;
    if (kms && (await this.#client.getCode({ address: kms }))) {
      const [allowed, reason] = await this.#client.readContract({
        address: kms,
        abi: BOOT_INFO_ABI,
        functionName: 'isAppAllowed',
        args: [
          {
            appId: app,
            composeHash: hex32(f.composeHash),
            instanceId: `0x${f.instanceId.replace(/^0x/, '')}` as Address,
            deviceId: hex32(f.deviceId),
            mrAggregated: ZERO32,
            mrSystem: ZERO32,
            osImageHash: hex32(f.osImageHash),
            tcbStatus: 'UpToDate',
            advisoryIds: [],
          },
        ],
      });
      return allowed ? null : reason || 'refused';
    }
    const [hashAllowed, anyDevice, deviceAllowed] = await Promise.all([
      this.#client.readContract({ address: app, abi: dstackAppAbi, functionName: 'allowedComposeHashes', args: [hex32(f.composeHash)] }),
      this.#client.readContract({ address: app, abi: dstackAppAbi, functionName: 'allowAnyDevice' }),
      this.#client.readContract({ address: app, abi: dstackAppAbi, functionName: 'allowedDeviceIds', args: [hex32(f.deviceId)] }),
    ]);
    if (!hashAllowed) return 'Compose hash not allowed';
    if (!anyDevice && !deviceAllowed) return 'Device not allowed';
    return null;
  }
}
