// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Initializable} from "@openzeppelin/contracts-upgradeable/proxy/utils/Initializable.sol";
import {Ownable2StepUpgradeable} from "@openzeppelin/contracts-upgradeable/access/Ownable2StepUpgradeable.sol";
import {UUPSUpgradeable} from "@openzeppelin/contracts-upgradeable/proxy/utils/UUPSUpgradeable.sol";
import {ERC165Upgradeable} from "@openzeppelin/contracts-upgradeable/utils/introspection/ERC165Upgradeable.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {IAppAuth} from "./IAppAuth.sol";
import {IAppAuthBasicManagement} from "./IAppAuthBasicManagement.sol";

/// @title An app's on-chain policy, interface-compatible with dstack's DstackApp.
/// @notice Written for the local stack and tests. It lives behind an ERC1967 proxy (the proxy's
/// address is the app id) and has the same selectors, events and errors as dstack's contract,
/// so the SDKs, wallets and our worker treat it as the real one: two-step ownership, reverts
/// with OwnableUnauthorizedAccount, compose-hash and device allow-lists, the TCB flag, and the
/// isAppAllowed check the KMS makes at boot.
contract DstackApp is
    Initializable,
    Ownable2StepUpgradeable,
    UUPSUpgradeable,
    ERC165Upgradeable,
    IAppAuth,
    IAppAuthBasicManagement
{
    // Storage order matters for upgrades; keep new fields at the end, before the gap.
    mapping(bytes32 => bool) public allowedComposeHashes;
    bool private _upgradesDisabled;
    bool public allowAnyDevice;
    mapping(bytes32 => bool) public allowedDeviceIds;
    bool public requireTcbUpToDate;

    event UpgradesDisabled();
    event AllowAnyDeviceSet(bool allowAny);
    event RequireTcbUpToDateSet(bool requireUpToDate);
    /// One event for every policy change, so an indexer needs a single topic to follow an app.
    event PolicyChanged(address indexed actor, bytes32 indexed policy, bytes32 indexed value, bool enabled);

    bytes4 private constant IAPP_AUTH_ID = 0x1e079198;
    bytes4 private constant IAPP_AUTH_BASIC_MANAGEMENT_ID = 0x8fd37527;

    /// The implementation itself is never initialised: only proxies are.
    constructor() {
        _disableInitializers();
    }

    /// Older factories call this form (no TCB flag).
    function initialize(
        address initialOwner,
        bool disableUpgrades_,
        bool allowAnyDevice_,
        bytes32 initialDeviceId,
        bytes32 initialComposeHash
    ) public initializer {
        _setUp(initialOwner, disableUpgrades_, allowAnyDevice_, initialDeviceId, initialComposeHash);
    }

    function initialize(
        address initialOwner,
        bool disableUpgrades_,
        bool requireTcbUpToDate_,
        bool allowAnyDevice_,
        bytes32 initialDeviceId,
        bytes32 initialComposeHash
    ) public initializer {
        requireTcbUpToDate = requireTcbUpToDate_;
        _setUp(initialOwner, disableUpgrades_, allowAnyDevice_, initialDeviceId, initialComposeHash);
    }

    function _setUp(
        address initialOwner,
        bool disableUpgrades_,
        bool allowAnyDevice_,
        bytes32 initialDeviceId,
        bytes32 initialComposeHash
    ) private {
        require(initialOwner != address(0), "invalid owner address");
        __Ownable_init(initialOwner);
        __ERC165_init();
        _upgradesDisabled = disableUpgrades_;
        allowAnyDevice = allowAnyDevice_;
        if (initialDeviceId != bytes32(0)) _setDevice(initialDeviceId, true);
        if (initialComposeHash != bytes32(0)) _setComposeHash(initialComposeHash, true);
    }

    function version() external pure returns (uint256) {
        return 2;
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC165Upgradeable, IERC165) returns (bool) {
        return interfaceId == IAPP_AUTH_ID || interfaceId == IAPP_AUTH_BASIC_MANAGEMENT_ID || super.supportsInterface(interfaceId);
    }

    /// Re-adding an allowed hash succeeds and emits again; callers must not read a second
    /// event as a second registration.
    function addComposeHash(bytes32 composeHash) external onlyOwner {
        _setComposeHash(composeHash, true);
    }

    function removeComposeHash(bytes32 composeHash) external onlyOwner {
        _setComposeHash(composeHash, false);
    }

    function addDevice(bytes32 deviceId) external onlyOwner {
        _setDevice(deviceId, true);
    }

    function removeDevice(bytes32 deviceId) external onlyOwner {
        _setDevice(deviceId, false);
    }

    function setAllowAnyDevice(bool allowAny) external onlyOwner {
        allowAnyDevice = allowAny;
        emit AllowAnyDeviceSet(allowAny);
        _policy("allow-any-device", bytes32(0), allowAny);
    }

    function setRequireTcbUpToDate(bool requireUpToDate) external onlyOwner {
        requireTcbUpToDate = requireUpToDate;
        emit RequireTcbUpToDateSet(requireUpToDate);
        _policy("require-tcb-up-to-date", bytes32(0), requireUpToDate);
    }

    /// One way only: after this the implementation behind the proxy is final.
    function disableUpgrades() external onlyOwner {
        _upgradesDisabled = true;
        emit UpgradesDisabled();
        _policy("upgrades-disabled", bytes32(0), true);
    }

    /// What the KMS asks before it hands an instance its keys. The order of the checks decides
    /// which reason a refused boot reports.
    function isAppAllowed(AppBootInfo calldata bootInfo) external view returns (bool isAllowed, string memory reason) {
        if (requireTcbUpToDate && keccak256(bytes(bootInfo.tcbStatus)) != keccak256("UpToDate")) {
            return (false, "TCB status is not up to date");
        }
        if (!allowedComposeHashes[bootInfo.composeHash]) return (false, "Compose hash not allowed");
        if (!allowAnyDevice && !allowedDeviceIds[bootInfo.deviceId]) return (false, "Device not allowed");
        return (true, "");
    }

    function _authorizeUpgrade(address newImplementation) internal override onlyOwner {
        require(!_upgradesDisabled, "Upgrades are permanently disabled");
        _policy("implementation-upgrade", bytes32(uint256(uint160(newImplementation))), true);
    }

    function _setComposeHash(bytes32 composeHash, bool allowed) private {
        allowedComposeHashes[composeHash] = allowed;
        if (allowed) emit ComposeHashAdded(composeHash);
        else emit ComposeHashRemoved(composeHash);
        _policy("compose-hash", composeHash, allowed);
    }

    function _setDevice(bytes32 deviceId, bool allowed) private {
        allowedDeviceIds[deviceId] = allowed;
        if (allowed) emit DeviceAdded(deviceId);
        else emit DeviceRemoved(deviceId);
        _policy("device", deviceId, allowed);
    }

    function _policy(string memory policy, bytes32 value, bool enabled) private {
        emit PolicyChanged(msg.sender, keccak256(bytes(policy)), value, enabled);
    }

    uint256[49] private __gap;
}
