// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Initializable} from "@openzeppelin/contracts-upgradeable/proxy/utils/Initializable.sol";
import {Ownable2StepUpgradeable} from "@openzeppelin/contracts-upgradeable/access/Ownable2StepUpgradeable.sol";
import {UUPSUpgradeable} from "@openzeppelin/contracts-upgradeable/proxy/utils/UUPSUpgradeable.sol";
import {ERC165Upgradeable} from "@openzeppelin/contracts-upgradeable/utils/introspection/ERC165Upgradeable.sol";
import {IERC165} from "@openzeppelin/contracts/utils/introspection/IERC165.sol";
import {ERC1967Proxy} from "@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol";
import {IAppAuth} from "./IAppAuth.sol";

/// @title A KMS's on-chain registry, interface-compatible with dstack's DstackKms.
/// @notice Written for the local stack and tests. It deploys apps (an ERC1967 proxy per app in
/// front of one DstackApp implementation) and registers them, keeps the OS images and KMS
/// measurements it accepts and its own public keys (`kmsInfo`), and answers the KMS's boot
/// question: app registered, OS image allowed, then whatever the app's own contract says.
contract DstackKms is Initializable, Ownable2StepUpgradeable, UUPSUpgradeable, ERC165Upgradeable, IAppAuth {
    struct KmsInfo {
        bytes k256Pubkey;
        bytes caPubkey;
        bytes quote;
        bytes eventlog;
    }

    KmsInfo public kmsInfo;
    string public gatewayAppId;
    mapping(address => bool) public registeredApps;
    mapping(bytes32 => bool) public kmsAllowedAggregatedMrs;
    mapping(bytes32 => bool) public kmsAllowedDeviceIds;
    mapping(bytes32 => bool) public allowedOsImages;
    address public appImplementation;

    event AppRegistered(address appId);
    event KmsInfoSet(bytes k256Pubkey);
    event KmsAggregatedMrAdded(bytes32 mrAggregated);
    event KmsAggregatedMrRemoved(bytes32 mrAggregated);
    event KmsDeviceAdded(bytes32 deviceId);
    event KmsDeviceRemoved(bytes32 deviceId);
    event OsImageHashAdded(bytes32 osImageHash);
    event OsImageHashRemoved(bytes32 osImageHash);
    event GatewayAppIdSet(string gatewayAppId);
    event AppImplementationSet(address implementation);
    event AppDeployedViaFactory(address indexed appId, address indexed deployer);
    event PolicyChanged(address indexed actor, bytes32 indexed policy, bytes32 indexed value, bool enabled);

    bytes4 private constant IAPP_AUTH_ID = 0x1e079198;
    // The six-argument DstackApp initializer the factory calls.
    bytes4 private constant APP_INITIALIZE = bytes4(keccak256("initialize(address,bool,bool,bool,bytes32,bytes32)"));

    constructor() {
        _disableInitializers();
    }

    function initialize(address initialOwner, address appImplementation_) public initializer {
        __Ownable_init(initialOwner);
        __ERC165_init();
        if (appImplementation_ != address(0)) _setAppImplementation(appImplementation_);
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC165Upgradeable, IERC165) returns (bool) {
        return interfaceId == IAPP_AUTH_ID || super.supportsInterface(interfaceId);
    }

    function setKmsInfo(KmsInfo memory info) external onlyOwner {
        kmsInfo = info;
        emit KmsInfoSet(info.k256Pubkey);
        _policy("kms-info", keccak256(info.k256Pubkey), true);
    }

    function setKmsQuote(bytes memory quote) external onlyOwner {
        kmsInfo.quote = quote;
    }

    function setKmsEventlog(bytes memory eventlog) external onlyOwner {
        kmsInfo.eventlog = eventlog;
    }

    function setGatewayAppId(string memory appId) external onlyOwner {
        gatewayAppId = appId;
        emit GatewayAppIdSet(appId);
        _policy("gateway-app-id", keccak256(bytes(appId)), true);
    }

    function setAppImplementation(address implementation) external onlyOwner {
        require(implementation != address(0), "Invalid implementation address");
        _setAppImplementation(implementation);
    }

    /// Anyone may register an app id: registration says "this KMS will consider it", the
    /// app's own contract still decides what boots.
    function registerApp(address appId) public {
        require(appId != address(0), "Invalid app ID");
        registeredApps[appId] = true;
        emit AppRegistered(appId);
        _policy("registered-app", bytes32(uint256(uint160(appId))), true);
    }

    function deployAndRegisterApp(
        address initialOwner,
        bool disableUpgrades,
        bool requireTcbUpToDate,
        bool allowAnyDevice,
        bytes32 initialDeviceId,
        bytes32 initialComposeHash
    ) public returns (address appId) {
        require(appImplementation != address(0), "DstackApp implementation not set");
        require(initialOwner != address(0), "Invalid owner address");
        bytes memory init = abi.encodeWithSelector(
            APP_INITIALIZE, initialOwner, disableUpgrades, requireTcbUpToDate, allowAnyDevice, initialDeviceId, initialComposeHash
        );
        appId = address(new ERC1967Proxy(appImplementation, init));
        registerApp(appId);
        emit AppDeployedViaFactory(appId, msg.sender);
    }

    /// The form the SDKs call (no TCB flag).
    function deployAndRegisterApp(
        address initialOwner,
        bool disableUpgrades,
        bool allowAnyDevice,
        bytes32 initialDeviceId,
        bytes32 initialComposeHash
    ) external returns (address appId) {
        return deployAndRegisterApp(initialOwner, disableUpgrades, false, allowAnyDevice, initialDeviceId, initialComposeHash);
    }

    function addKmsAggregatedMr(bytes32 mrAggregated) external onlyOwner {
        kmsAllowedAggregatedMrs[mrAggregated] = true;
        emit KmsAggregatedMrAdded(mrAggregated);
        _policy("kms-aggregated-mr", mrAggregated, true);
    }

    function removeKmsAggregatedMr(bytes32 mrAggregated) external onlyOwner {
        kmsAllowedAggregatedMrs[mrAggregated] = false;
        emit KmsAggregatedMrRemoved(mrAggregated);
        _policy("kms-aggregated-mr", mrAggregated, false);
    }

    function addKmsDevice(bytes32 deviceId) external onlyOwner {
        kmsAllowedDeviceIds[deviceId] = true;
        emit KmsDeviceAdded(deviceId);
        _policy("kms-device", deviceId, true);
    }

    function removeKmsDevice(bytes32 deviceId) external onlyOwner {
        kmsAllowedDeviceIds[deviceId] = false;
        emit KmsDeviceRemoved(deviceId);
        _policy("kms-device", deviceId, false);
    }

    function addOsImageHash(bytes32 osImageHash) external onlyOwner {
        allowedOsImages[osImageHash] = true;
        emit OsImageHashAdded(osImageHash);
        _policy("os-image", osImageHash, true);
    }

    function removeOsImageHash(bytes32 osImageHash) external onlyOwner {
        allowedOsImages[osImageHash] = false;
        emit OsImageHashRemoved(osImageHash);
        _policy("os-image", osImageHash, false);
    }

    /// What a KMS replica checks about itself before it joins.
    function isKmsAllowed(AppBootInfo calldata bootInfo) external view returns (bool isAllowed, string memory reason) {
        if (keccak256(bytes(bootInfo.tcbStatus)) != keccak256("UpToDate")) return (false, "TCB status is not up to date");
        if (!allowedOsImages[bootInfo.osImageHash]) return (false, "OS image is not allowed");
        if (!kmsAllowedAggregatedMrs[bootInfo.mrAggregated]) return (false, "Aggregated MR not allowed");
        if (!kmsAllowedDeviceIds[bootInfo.deviceId]) return (false, "KMS is not allowed to boot on this device");
        return (true, "");
    }

    /// The boot check for an app instance: KMS-level conditions first, then the app's contract.
    function isAppAllowed(AppBootInfo calldata bootInfo) external view returns (bool isAllowed, string memory reason) {
        if (!registeredApps[bootInfo.appId]) return (false, "App not registered");
        if (!allowedOsImages[bootInfo.osImageHash]) return (false, "OS image is not allowed");
        if (bootInfo.appId.code.length == 0) return (false, "App not deployed or invalid address");
        return IAppAuth(bootInfo.appId).isAppAllowed(bootInfo);
    }

    function _authorizeUpgrade(address newImplementation) internal override onlyOwner {
        _policy("implementation-upgrade", bytes32(uint256(uint160(newImplementation))), true);
    }

    function _setAppImplementation(address implementation) private {
        appImplementation = implementation;
        emit AppImplementationSet(implementation);
        _policy("app-implementation", bytes32(uint256(uint160(implementation))), true);
    }

    function _policy(string memory policy, bytes32 value, bool enabled) private {
        emit PolicyChanged(msg.sender, keccak256(bytes(policy)), value, enabled);
    }

    uint256[50] private __gap;
}
