// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

// Compiled so the stack can put DstackKms itself behind the same proxy its apps use.
import {ERC1967Proxy} from "@openzeppelin/contracts/proxy/ERC1967/ERC1967Proxy.sol";
