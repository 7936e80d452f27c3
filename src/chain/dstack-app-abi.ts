// The DstackApp interface the env-update flow relies on (DESIGN.md §3). Kept by hand
// as a const so viem can type every call; a test checks it against the compiled contract.
export const dstackAppAbi = [
  { type: 'function', name: 'owner', stateMutability: 'view', inputs: [], outputs: [{ name: '', type: 'address' }] },
  { type: 'function', name: 'allowAnyDevice', stateMutability: 'view', inputs: [], outputs: [{ name: '', type: 'bool' }] },
  {
    type: 'function',
    name: 'allowedComposeHashes',
    stateMutability: 'view',
    inputs: [{ name: '', type: 'bytes32' }],
    outputs: [{ name: '', type: 'bool' }],
  },
  {
    type: 'function',
    name: 'allowedDeviceIds',
    stateMutability: 'view',
    inputs: [{ name: '', type: 'bytes32' }],
    outputs: [{ name: '', type: 'bool' }],
  },
  {
    type: 'function',
    name: 'addComposeHash',
    stateMutability: 'nonpayable',
    inputs: [{ name: 'composeHash', type: 'bytes32' }],
    outputs: [],
  },
  {
    type: 'function',
    name: 'removeComposeHash',
    stateMutability: 'nonpayable',
    inputs: [{ name: 'composeHash', type: 'bytes32' }],
    outputs: [],
  },
  {
    type: 'function',
    name: 'addDevice',
    stateMutability: 'nonpayable',
    inputs: [{ name: 'deviceId', type: 'bytes32' }],
    outputs: [],
  },
  {
    type: 'event',
    name: 'ComposeHashAdded',
    anonymous: false,
    inputs: [{ name: 'composeHash', type: 'bytes32', indexed: false }],
  },
  {
    type: 'event',
    name: 'ComposeHashRemoved',
    anonymous: false,
    inputs: [{ name: 'composeHash', type: 'bytes32', indexed: false }],
  },
] as const;

/**
 * Revert errors an app contract may raise on addComposeHash, for readable messages when
 * gas estimation fails: our test contract's NotOwner, and OpenZeppelin's Ownable error
 * that dstack's upgradeable DstackApp uses.
 */
export const dstackAppErrorsAbi = [
  { type: 'error', name: 'NotOwner', inputs: [{ name: 'caller', type: 'address' }] },
  { type: 'error', name: 'OwnableUnauthorizedAccount', inputs: [{ name: 'account', type: 'address' }] },
] as const;
