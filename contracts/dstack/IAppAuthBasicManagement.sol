// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice What wallets and tools use to manage an app's allow-lists (ERC-165 id 0x8fd37527).
interface IAppAuthBasicManagement {
    event ComposeHashAdded(bytes32 composeHash);
    event ComposeHashRemoved(bytes32 composeHash);
    event DeviceAdded(bytes32 deviceId);
    event DeviceRemoved(bytes32 deviceId);

    function addComposeHash(bytes32 composeHash) external;
    function removeComposeHash(bytes32 composeHash) external;
    function addDevice(bytes32 deviceId) external;
    function removeDevice(bytes32 deviceId) external;
}
