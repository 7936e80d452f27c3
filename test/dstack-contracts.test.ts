// Our DstackApp and DstackKms (contracts/dstack) against dstack's published interface, and their
// behaviour on the suite's chain: UUPS proxies made by deployAndRegisterApp, two-step ownership,
// OwnableUnauthorizedAccount, and the boot check isAppAllowed with each of its refusals.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  createWalletClient,
  getAddress,
  http,
  toEventSelector,
  toFunctionSelector,
  toHex,
  type Abi,
  type AbiEvent,
  type AbiFunction,
  type Address,
  type Hex,
} from 'viem';
import { mnemonicToAccount } from 'viem/accounts';
import { deployAppAuth } from '@phala/cloud';
import { foundry } from 'viem/chains';
import { ANVIL_MNEMONIC } from '../src/dev/anvil.ts';
import { loadArtifact } from '../src/dev/compile-contracts.ts';
import { appIdFromDeployment, sendDeployAndRegisterApp } from '../src/dev/deploy-dstack.ts';
import { useStack, type TestStack } from './support/stack.ts';

// Selectors, topics and interface ids of dstack's contracts (Dstack-TEE/dstack,
// kms/auth-eth/contracts/{DstackApp,DstackKms,IAppAuth,IAppAuthBasicManagement}.sol; the two
// interface ids are the constants written in that source). OpenZeppelin v5 supplies the
// ownership, proxy and initializer parts, whose errors dstack's contracts revert with.
const APP_FUNCTIONS: [string, Hex][] = [
  ['addComposeHash(bytes32)', '0xdfc77223'],
  ['removeComposeHash(bytes32)', '0x67b3f22c'],
  ['allowedComposeHashes(bytes32)', '0x2f6622e5'],
  ['owner()', '0x8da5cb5b'],
  ['pendingOwner()', '0xe30c3978'],
  ['transferOwnership(address)', '0xf2fde38b'],
  ['acceptOwnership()', '0x79ba5097'],
  ['renounceOwnership()', '0x715018a6'],
  ['allowAnyDevice()', '0x3440a16a'],
  ['allowedDeviceIds(bytes32)', '0xbf8b211b'],
  ['addDevice(bytes32)', '0x2a819728'],
  ['removeDevice(bytes32)', '0x1d266200'],
  ['setAllowAnyDevice(bool)', '0x7c4beeb8'],
  ['requireTcbUpToDate()', '0x0aa58c83'],
  ['setRequireTcbUpToDate(bool)', '0x6e4c7422'],
  ['disableUpgrades()', '0xec669036'],
  ['version()', '0x54fd4d50'],
  ['initialize(address,bool,bool,bytes32,bytes32)', '0x187515ca'],
  ['initialize(address,bool,bool,bool,bytes32,bytes32)', '0x9ed28193'],
  ['isAppAllowed((address,bytes32,address,bytes32,bytes32,bytes32,bytes32,string,string[]))', '0x1e079198'],
  ['supportsInterface(bytes4)', '0x01ffc9a7'],
  ['upgradeToAndCall(address,bytes)', '0x4f1ef286'],
  ['proxiableUUID()', '0x52d1902d'],
];
const KMS_FUNCTIONS: [string, Hex][] = [
  ['deployAndRegisterApp(address,bool,bool,bytes32,bytes32)', '0x8618169d'],
  ['deployAndRegisterApp(address,bool,bool,bool,bytes32,bytes32)', '0x9cb9c31f'],
  ['registerApp(address)', '0x17a1d80f'],
  ['registeredApps(address)', '0xa6c4cce9'],
  ['kmsInfo()', '0x09177063'],
  ['setKmsInfo((bytes,bytes,bytes,bytes))', '0x7d025352'],
  ['allowedOsImages(bytes32)', '0x9a4e1d18'],
  ['addOsImageHash(bytes32)', '0x06a3ae96'],
  ['removeOsImageHash(bytes32)', '0x9425bac6'],
  ['appImplementation()', '0x25a992da'],
  ['gatewayAppId()', '0x95f51931'],
  ['isAppAllowed((address,bytes32,address,bytes32,bytes32,bytes32,bytes32,string,string[]))', '0x1e079198'],
  ['isKmsAllowed((address,bytes32,address,bytes32,bytes32,bytes32,bytes32,string,string[]))', '0xe067ec9d'],
  ['owner()', '0x8da5cb5b'],
  ['upgradeToAndCall(address,bytes)', '0x4f1ef286'],
];
const APP_EVENTS: [string, Hex][] = [
  ['ComposeHashAdded(bytes32)', '0xfecb34306dd9d8b785b54d65489d06afc8822a0893ddacedff40c50a4942d0af'],
  ['ComposeHashRemoved(bytes32)', '0x755b79bd4b0eeab344d032284a99003b2ddc018b646752ac72d681593a6e8947'],
  ['DeviceAdded(bytes32)', '0x67fc71ab96fe3fa3c6f78e9a00e635d591b7333ce611c0380bc577aac702243b'],
  ['DeviceRemoved(bytes32)', '0xe0862975ac517b0478d308012afabc4bc37c23874a18144d7f2dfb852ff95c2c'],
  ['AllowAnyDeviceSet(bool)', '0xbb2cdb6c7b362202d40373f87bc4788301cca658f91711ac1662e1ad2cba4a20'],
  ['RequireTcbUpToDateSet(bool)', '0xafae60561b2481a349b45b3a47357f70eef6ae67e5b6e1749d74de7f19a25aa1'],
  ['UpgradesDisabled()', '0x0e5daa943fcd7e7182d0e893d180695c2ea9f6f1b4a1c5432faf14cf17b774e8'],
  ['PolicyChanged(address,bytes32,bytes32,bool)', '0x341d3bc64e32172fc5bcf27b0f7f69dc5adc19af64b7aa1dee361e5883c32375'],
  ['OwnershipTransferred(address,address)', '0x8be0079c531659141344cd1fd0a4f28419497f9722a3daafe3b4186f6b6457e0'],
  ['OwnershipTransferStarted(address,address)', '0x38d16b8cac22d99fc7c124b9cd0de2d3fa1faef420bfe791d8c362d765e22700'],
  ['Upgraded(address)', '0xbc7cd75a20ee27fd9adebab32041f755214dbc6bffa90cc0225b39da2e5c2d3b'],
  ['Initialized(uint64)', '0xc7f505b2f371ae2175ee4913f4499e1f2633a7b5936321eed1cdaeb6115181d2'],
];
const KMS_EVENTS: [string, Hex][] = [
  ['AppRegistered(address)', '0x0d540ad8f39e07d19909687352b9fa017405d93c91a6760981fbae9cf28bfef7'],
  ['AppDeployedViaFactory(address,address)', '0xfd86d7f6962eba3b7a3bf9129c06c0b2f885e1c61ef2c9f0dbb856be0deefdee'],
  ['KmsInfoSet(bytes)', '0x77cdad119a452bbd96c45635758fc4af8a6bde3deaccf3fada634ddf9a162706'],
  ['OsImageHashAdded(bytes32)', '0x4911843506849c85a5ca6e6e2c01eed2d3ab86baba619517a2aad9d5ab2aeff2'],
  ['OsImageHashRemoved(bytes32)', '0x99b3cee95daf3138d0c982299cd0264f5b7a61aa629b42b92f3ec8966aa7f6fe'],
  ['AppImplementationSet(address)', '0x08bb433f12b5fd81d2d5e0deeb3b4d28371781ddbd80e9d053e7468d2b1aa82d'],
  ['PolicyChanged(address,bytes32,bytes32,bool)', '0x341d3bc64e32172fc5bcf27b0f7f69dc5adc19af64b7aa1dee361e5883c32375'],
];
const ERRORS: [string, Hex][] = [
  ['OwnableUnauthorizedAccount(address)', '0x118cdaa7'],
  ['OwnableInvalidOwner(address)', '0x1e4fbdf7'],
  ['InvalidInitialization()', '0xf92ee8a9'],
  ['NotInitializing()', '0xd7e6bcf8'],
  ['UUPSUnauthorizedCallContext()', '0xe07c8dba'],
  ['UUPSUnsupportedProxiableUUID(bytes32)', '0xaa1d49a4'],
];
const IAPP_AUTH_ID = '0x1e079198';
const IAPP_AUTH_BASIC_MANAGEMENT_ID = '0x8fd37527';

const appAbi = loadArtifact('dstack/DstackApp').abi as Abi;
const kmsAbi = loadArtifact('dstack/DstackKms').abi as Abi;

function selectors(abi: Abi) {
  const fns = new Map<Hex, string>();
  const events = new Map<Hex, string>();
  const errors = new Map<Hex, string>();
  for (const item of abi) {
    if (item.type === 'function') fns.set(toFunctionSelector(item as AbiFunction), (item as AbiFunction).name);
    if (item.type === 'event') events.set(toEventSelector(item as AbiEvent), (item as AbiEvent).name);
    if (item.type === 'error') errors.set(toFunctionSelector(item as unknown as AbiFunction), (item as unknown as AbiFunction).name);
  }
  return { fns, events, errors };
}

test("our compiled ABIs carry dstack's function selectors, event topics and errors", () => {
  for (const [abi, fns, events] of [
    [appAbi, APP_FUNCTIONS, APP_EVENTS],
    [kmsAbi, KMS_FUNCTIONS, KMS_EVENTS],
  ] as const) {
    const ours = selectors(abi);
    for (const [sig, sel] of fns) assert.equal(ours.fns.get(sel), sig.slice(0, sig.indexOf('(')), `${sig} (${sel})`);
    for (const [sig, topic] of events) assert.equal(ours.events.get(topic), sig.slice(0, sig.indexOf('(')), `${sig}`);
    for (const [sig, sel] of ERRORS.slice(0, 3)) assert.ok(ours.errors.has(sel), `${sig}`);
  }
  assert.ok(selectors(appAbi).errors.has(ERRORS[4]![1]) && selectors(appAbi).errors.has(ERRORS[5]![1]), 'UUPS errors');
  // The interface ids dstack hard-codes follow from the selectors above.
  const xor = (sigs: string[]) =>
    toHex(
      sigs.reduce((acc, s) => (acc ^ parseInt(APP_FUNCTIONS.find(([f]) => f === s)![1].slice(2), 16)) >>> 0, 0),
      { size: 4 },
    );
  assert.equal(xor(['isAppAllowed((address,bytes32,address,bytes32,bytes32,bytes32,bytes32,string,string[]))']), IAPP_AUTH_ID);
  assert.equal(
    xor(['addComposeHash(bytes32)', 'removeComposeHash(bytes32)', 'addDevice(bytes32)', 'removeDevice(bytes32)']),
    IAPP_AUTH_BASIC_MANAGEMENT_ID,
  );
});

// ---------------------------------------------------------------------------
// On chain
// ---------------------------------------------------------------------------

let stack: TestStack;
// A dev account no other test file sends from.
const owner = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 9 });
const newOwner = mnemonicToAccount(ANVIL_MNEMONIC, { addressIndex: 3 });

before(async () => {
  stack = await useStack();
});
after(async () => {
  await stack?.release();
});

function clients() {
  const chain = { ...foundry, id: stack.info.chainId };
  const transport = http(stack.info.rpcUrl);
  return {
    pub: createPublicClient({ chain, transport, pollingInterval: 50 }),
    wallet: createWalletClient({ chain, transport, account: owner }),
    other: createWalletClient({ chain, transport, account: newOwner }),
  };
}

const kmsAddress = () => getAddress(stack.info.kmsAddress as string);
const ZERO = `0x${'00'.repeat(32)}` as Hex;
const rand32 = () => toHex(randomBytes(32));

async function revertName(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof BaseError) {
      const revert = err.walk((e) => e instanceof ContractFunctionRevertedError) as ContractFunctionRevertedError | null;
      if (revert) return revert.data?.errorName === 'Error' || !revert.data ? (revert.reason ?? 'reverted') : revert.data.errorName;
    }
    throw err;
  }
  throw new Error('expected a revert');
}

async function newApp(opts: { allowAnyDevice: boolean; deviceId?: Hex; composeHash?: Hex }): Promise<Address> {
  const { pub, wallet } = clients();
  const hash = await sendDeployAndRegisterApp({ wallet, kms: kmsAddress(), owner: owner.address, ...opts });
  return appIdFromDeployment(pub, hash);
}

test('the stack deployed its KMS and apps through DstackKms: registered proxies in front of one implementation', async () => {
  const { pub } = clients();
  const kms = kmsAddress();
  const impl = (await pub.readContract({ address: kms, abi: kmsAbi, functionName: 'appImplementation' })) as Address;
  const slot = '0x360894a13ba1a3210667c828492db98dca3e2076cc3735a920a3ca505d382bbc'; // ERC-1967 implementation slot
  for (const app of stack.info.apps) {
    assert.equal(await pub.readContract({ address: kms, abi: kmsAbi, functionName: 'registeredApps', args: [app.appId] }), true, app.name);
    const stored = await pub.getStorageAt({ address: app.appId, slot });
    assert.equal(getAddress(`0x${stored!.slice(-40)}`), impl, `${app.name} is a proxy of the app implementation`);
    assert.equal(await pub.readContract({ address: app.appId, abi: appAbi, functionName: 'version' }), 2n);
    assert.equal(
      getAddress((await pub.readContract({ address: app.appId, abi: appAbi, functionName: 'owner' })) as Address),
      getAddress(app.owner),
    );
  }
  const [k256] = (await pub.readContract({ address: kms, abi: kmsAbi, functionName: 'kmsInfo' })) as readonly Hex[];
  const listed = (await (await fetch(`${stack.info.apiUrl}/kms?is_onchain=true`)).json()) as {
    items: { kms_contract_address: string; k256_pubkey: string }[];
  };
  assert.equal(listed.items[0]!.kms_contract_address.toLowerCase(), kms.toLowerCase(), 'the simulator names the deployed KMS');
  assert.equal(listed.items[0]!.k256_pubkey, k256, 'kmsInfo holds the key the simulated KMS signs with');
  for (const id of [IAPP_AUTH_ID, IAPP_AUTH_BASIC_MANAGEMENT_ID]) {
    assert.equal(
      await pub.readContract({ address: stack.info.apps[0]!.appId, abi: appAbi, functionName: 'supportsInterface', args: [id] }),
      true,
      id,
    );
  }
});

test('ownership: only the owner changes policy (OwnableUnauthorizedAccount), two-step transfer, no second initialize', async () => {
  const { pub, wallet, other } = clients();
  const app = await newApp({ allowAnyDevice: true });
  const h = rand32();
  assert.equal(
    await revertName(pub.simulateContract({ address: app, abi: appAbi, functionName: 'addComposeHash', args: [h], account: newOwner })),
    'OwnableUnauthorizedAccount',
  );
  await pub.waitForTransactionReceipt({
    hash: await wallet.writeContract({ address: app, abi: appAbi, functionName: 'addComposeHash', args: [h] }),
  });
  assert.equal(await pub.readContract({ address: app, abi: appAbi, functionName: 'allowedComposeHashes', args: [h] }), true);

  assert.equal(
    await revertName(
      pub.simulateContract({
        address: app,
        abi: appAbi,
        functionName: 'initialize',
        args: [newOwner.address, false, true, ZERO, ZERO],
        account: newOwner,
      }),
    ),
    'InvalidInitialization',
  );
  const impl = (await pub.readContract({ address: kmsAddress(), abi: kmsAbi, functionName: 'appImplementation' })) as Address;
  assert.equal(
    await revertName(
      pub.simulateContract({
        address: impl,
        abi: appAbi,
        functionName: 'initialize',
        args: [newOwner.address, false, true, ZERO, ZERO],
        account: newOwner,
      }),
    ),
    'InvalidInitialization',
    'the implementation behind the proxies cannot be taken over',
  );

  await pub.waitForTransactionReceipt({
    hash: await wallet.writeContract({ address: app, abi: appAbi, functionName: 'transferOwnership', args: [newOwner.address] }),
  });
  assert.equal(
    getAddress((await pub.readContract({ address: app, abi: appAbi, functionName: 'owner' })) as Address),
    owner.address,
    'still the owner until accepted',
  );
  assert.equal(
    getAddress((await pub.readContract({ address: app, abi: appAbi, functionName: 'pendingOwner' })) as Address),
    newOwner.address,
  );
  await pub.waitForTransactionReceipt({ hash: await other.writeContract({ address: app, abi: appAbi, functionName: 'acceptOwnership' }) });
  assert.equal(getAddress((await pub.readContract({ address: app, abi: appAbi, functionName: 'owner' })) as Address), newOwner.address);

  await pub.waitForTransactionReceipt({ hash: await other.writeContract({ address: app, abi: appAbi, functionName: 'disableUpgrades' }) });
  assert.equal(
    await revertName(
      pub.simulateContract({ address: app, abi: appAbi, functionName: 'upgradeToAndCall', args: [impl, '0x'], account: newOwner }),
    ),
    'Upgrades are permanently disabled',
  );
});

test("the boot check: DstackKms.isAppAllowed refuses each missing condition with dstack's reason", async () => {
  const { pub, wallet } = clients();
  const kms = kmsAddress();
  const device = rand32();
  const compose = rand32();
  const app = await newApp({ allowAnyDevice: false, deviceId: device });
  const osImage = (await (
    await fetch(`${stack.info.apiUrl}/cvms/${(stack.info.cvms as { id: string }[])[0]!.id}`, {
      headers: { 'X-API-Key': stack.info.apiKey as string, 'X-Phala-Version': '2026-06-23' },
    })
  ).json()) as {
    os: { os_image_hash: string };
  };
  const boot = (over: Partial<{ appId: Address; composeHash: Hex; deviceId: Hex; osImageHash: Hex; tcbStatus: string }> = {}) => ({
    appId: app,
    composeHash: compose,
    instanceId: getAddress(toHex(randomBytes(20))),
    deviceId: device,
    mrAggregated: ZERO,
    mrSystem: ZERO,
    osImageHash: `0x${osImage.os.os_image_hash}` as Hex,
    tcbStatus: 'UpToDate',
    advisoryIds: [] as string[],
    ...over,
  });
  const ask = async (info: ReturnType<typeof boot>) =>
    (await pub.readContract({ address: kms, abi: kmsAbi, functionName: 'isAppAllowed', args: [info] })) as readonly [boolean, string];

  assert.deepEqual(await ask(boot({ appId: getAddress(toHex(randomBytes(20))) })), [false, 'App not registered']);
  assert.deepEqual(await ask(boot({ osImageHash: rand32() })), [false, 'OS image is not allowed']);
  assert.deepEqual(await ask(boot()), [false, 'Compose hash not allowed']);
  await pub.waitForTransactionReceipt({
    hash: await wallet.writeContract({ address: app, abi: appAbi, functionName: 'addComposeHash', args: [compose] }),
  });
  assert.deepEqual(await ask(boot()), [true, '']);
  assert.deepEqual(await ask(boot({ deviceId: rand32() })), [false, 'Device not allowed']);
  await pub.waitForTransactionReceipt({
    hash: await wallet.writeContract({ address: app, abi: appAbi, functionName: 'setRequireTcbUpToDate', args: [true] }),
  });
  assert.deepEqual(await ask(boot({ tcbStatus: 'OutOfDate' })), [false, 'TCB status is not up to date']);
  await pub.waitForTransactionReceipt({
    hash: await wallet.writeContract({ address: app, abi: appAbi, functionName: 'removeComposeHash', args: [compose] }),
  });
  assert.deepEqual(await ask(boot()), [false, 'Compose hash not allowed'], 'a hash removed later no longer boots');
});

test("the official SDK's deployAppAuth creates an app through our DstackKms", async () => {
  const { pub } = clients();
  const chain = { ...foundry, id: stack.info.chainId };
  const privateKey = toHex(owner.getHdKey().privateKey!);
  // The SDK logs its progress with console.log; keep the report readable.
  const log = console.log;
  console.log = () => {};
  let result;
  try {
    result = await deployAppAuth({ chain, rpcUrl: stack.info.rpcUrl, kmsContractAddress: kmsAddress(), privateKey, allowAnyDevice: true });
  } finally {
    console.log = log;
  }
  const app = getAddress(result.appId as Address);
  assert.equal(await pub.readContract({ address: kmsAddress(), abi: kmsAbi, functionName: 'registeredApps', args: [app] }), true);
  assert.equal(getAddress((await pub.readContract({ address: app, abi: appAbi, functionName: 'owner' })) as Address), owner.address);
  assert.equal(await pub.readContract({ address: app, abi: appAbi, functionName: 'allowAnyDevice' }), true);
});
