// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ERC1155} from "@openzeppelin/contracts/token/ERC1155/ERC1155.sol";
import {ERC1155Supply} from "@openzeppelin/contracts/token/ERC1155/extensions/ERC1155Supply.sol";
import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";

/// @title Data Anchoring Token (DAT)
/// @notice ERC-1155 with the semantics of the ERC-8028 draft: one class (token id) per dataset
/// carrying ownership/provenance (metadata URI, integrity hash, usage policy URI, creating
/// device), usage rights (units held are quota; `recordUsage` consumes them) and value share
/// (revenue settled to a class is paid pro rata to the units held, through a magnified
/// per-unit accumulator with per-account corrections kept exact across transfers).
contract DataAnchoringToken is ERC1155Supply, AccessControl, ReentrancyGuard {
    using SafeERC20 for IERC20;

    bytes32 public constant MINTER_ROLE = keccak256("MINTER_ROLE");
    /// Revenue assets tracked per class (ETH counts as one); bounds the work in `_update`.
    uint256 public constant MAX_ASSETS_PER_CLASS = 4;
    /// ETH is recorded under this asset address.
    address public constant ETH = address(0);
    uint256 private constant MAGNITUDE = 2 ** 128;

    struct TokenClass {
        string metadataURI;
        bytes32 integrityHash;
        string policyURI;
        address device;
        uint64 createdAt;
        bool verified;
    }

    /// Accounting of one revenue asset of one class.
    struct Revenue {
        uint256 magnifiedPerUnit; // sum of settled * MAGNITUDE / supply
        uint256 carry; // magnified remainder not yet spread: carried into the next settlement
        uint256 settled; // total settled (wei or token units)
        uint256 claimed; // total paid out
    }

    uint256 public classCount; // token ids are 1..classCount
    mapping(uint256 id => TokenClass) private _classes;
    mapping(bytes32 integrityHash => uint256 id) public tokenIdByHash;
    mapping(uint256 id => address[]) private _assets;
    mapping(uint256 id => mapping(address asset => Revenue)) private _revenue;
    mapping(uint256 id => mapping(address asset => mapping(address account => int256))) private _corrections;
    mapping(uint256 id => mapping(address asset => mapping(address account => uint256))) private _withdrawn;

    event ClassCreated(
        uint256 indexed id,
        bytes32 indexed integrityHash,
        address indexed device,
        address to,
        uint256 units,
        string metadataURI,
        string policyURI
    );
    event UsageRecorded(
        uint256 indexed id, address indexed account, address indexed operator, uint256 units, string metric
    );
    event RevenueSettled(uint256 indexed id, address indexed asset, address indexed payer, uint256 amount);
    event Claimed(uint256 indexed id, address indexed account, address indexed asset, uint256 amount);

    error DuplicateIntegrityHash(bytes32 integrityHash, uint256 existingId);
    error ZeroIntegrityHash();
    error UnknownClass(uint256 id);
    error NotHolderOrOperator(address account, address operator);
    error NoHolders(uint256 id);
    error ZeroAmount();
    error TooManyAssets(uint256 id);
    error TransferFailed();

    constructor(address admin) ERC1155("") {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
    }

    // ------------------------------------------------------------------ classes

    /// @notice Create the class of one dataset and mint its units. Only minters (the registry).
    function mintClass(
        address to,
        uint256 units,
        string calldata metadataURI,
        bytes32 integrityHash,
        string calldata policyURI,
        address device,
        bool verified
    ) external onlyRole(MINTER_ROLE) returns (uint256 id) {
        if (integrityHash == bytes32(0)) revert ZeroIntegrityHash();
        uint256 existing = tokenIdByHash[integrityHash];
        if (existing != 0) revert DuplicateIntegrityHash(integrityHash, existing);
        if (units == 0) revert ZeroAmount();
        id = ++classCount;
        tokenIdByHash[integrityHash] = id;
        _classes[id] = TokenClass(metadataURI, integrityHash, policyURI, device, uint64(block.timestamp), verified);
        emit ClassCreated(id, integrityHash, device, to, units, metadataURI, policyURI);
        _mint(to, id, units, "");
    }

    function classOf(uint256 id) external view returns (TokenClass memory) {
        if (id == 0 || id > classCount) revert UnknownClass(id);
        return _classes[id];
    }

    /// @notice Per-class metadata URI (ERC-1155 metadata extension).
    function uri(uint256 id) public view override returns (string memory) {
        return _classes[id].metadataURI;
    }

    // ------------------------------------------------------------------ usage rights

    /// @notice Consume `units` of the caller's quota of class `id`; `metric` says what was used.
    function recordUsage(uint256 id, uint256 units, string calldata metric) external {
        _recordUsage(msg.sender, id, units, metric);
    }

    /// @notice Consume `units` of `account`'s quota; the caller is the holder or an approved operator.
    function recordUsageFrom(address account, uint256 id, uint256 units, string calldata metric) external {
        if (account != msg.sender && !isApprovedForAll(account, msg.sender)) {
            revert NotHolderOrOperator(account, msg.sender);
        }
        _recordUsage(account, id, units, metric);
    }

    function _recordUsage(address account, uint256 id, uint256 units, string calldata metric) private {
        if (units == 0) revert ZeroAmount();
        if (id == 0 || id > classCount) revert UnknownClass(id);
        _burn(account, id, units); // reverts with ERC1155InsufficientBalance past the quota
        emit UsageRecorded(id, account, msg.sender, units, metric);
    }

    // ------------------------------------------------------------------ value share

    /// @notice Settle `msg.value` wei of revenue to class `id`, shared by the units held now.
    function settleRevenueETH(uint256 id) external payable nonReentrant {
        _settle(id, ETH, msg.value);
    }

    /// @notice Settle `amount` of ERC-20 `token` (pulled with transferFrom) to class `id`.
    function settleRevenueERC20(uint256 id, address token, uint256 amount) external nonReentrant {
        if (token == ETH) revert ZeroAmount();
        IERC20 erc20 = IERC20(token);
        uint256 before = erc20.balanceOf(address(this));
        erc20.safeTransferFrom(msg.sender, address(this), amount);
        // What arrived, not what was asked: a fee-on-transfer token delivers less.
        _settle(id, token, erc20.balanceOf(address(this)) - before);
    }

    function _settle(uint256 id, address asset, uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        if (id == 0 || id > classCount) revert UnknownClass(id);
        uint256 supply = totalSupply(id);
        if (supply == 0) revert NoHolders(id);
        Revenue storage r = _revenue[id][asset];
        if (r.settled == 0 && !_tracked(id, asset)) {
            if (_assets[id].length >= MAX_ASSETS_PER_CLASS) revert TooManyAssets(id);
            _assets[id].push(asset);
        }
        // Exact division with the remainder carried: nothing is lost, it is spread later.
        uint256 total = amount * MAGNITUDE + r.carry;
        r.magnifiedPerUnit += total / supply;
        r.carry = total % supply;
        r.settled += amount;
        emit RevenueSettled(id, asset, msg.sender, amount);
    }

    function _tracked(uint256 id, address asset) private view returns (bool) {
        address[] storage list = _assets[id];
        for (uint256 i = 0; i < list.length; i++) {
            if (list[i] == asset) return true;
        }
        return false;
    }

    /// @notice What `account` can claim now of `asset` (ETH = address(0)) from class `id`.
    function claimable(uint256 id, address asset, address account) public view returns (uint256) {
        int256 accumulated = int256(_revenue[id][asset].magnifiedPerUnit * balanceOf(account, id))
            + _corrections[id][asset][account];
        return uint256(accumulated) / MAGNITUDE - _withdrawn[id][asset][account];
    }

    /// @notice Pay the caller its share of `asset` revenue of class `id`.
    function claim(uint256 id, address asset) external nonReentrant returns (uint256 amount) {
        amount = claimable(id, asset, msg.sender);
        if (amount == 0) return 0;
        // Effects before the interaction (checks-effects-interactions).
        _withdrawn[id][asset][msg.sender] += amount;
        _revenue[id][asset].claimed += amount;
        emit Claimed(id, msg.sender, asset, amount);
        if (asset == ETH) {
            (bool ok,) = payable(msg.sender).call{value: amount}("");
            if (!ok) revert TransferFailed();
        } else {
            IERC20(asset).safeTransfer(msg.sender, amount);
        }
    }

    /// @notice Totals of one revenue asset of a class: settled, claimed, still held, and the
    /// magnified carry (a fraction of one unit's share, spread at the next settlement).
    function revenueOf(uint256 id, address asset)
        external
        view
        returns (uint256 settled, uint256 claimed, uint256 unclaimed, uint256 carry)
    {
        Revenue storage r = _revenue[id][asset];
        return (r.settled, r.claimed, r.settled - r.claimed, r.carry);
    }

    function revenueAssets(uint256 id) external view returns (address[] memory) {
        return _assets[id];
    }

    /// Keeps every holder's entitlement exact across mint, burn and transfer: units that move
    /// carry no past revenue with them.
    function _update(address from, address to, uint256[] memory ids, uint256[] memory values)
        internal
        override
    {
        super._update(from, to, ids, values);
        for (uint256 i = 0; i < ids.length; i++) {
            uint256 id = ids[i];
            address[] storage list = _assets[id];
            for (uint256 j = 0; j < list.length; j++) {
                address asset = list[j];
                int256 delta = int256(_revenue[id][asset].magnifiedPerUnit * values[i]);
                if (from != address(0)) _corrections[id][asset][from] += delta;
                if (to != address(0)) _corrections[id][asset][to] -= delta;
            }
        }
    }

    function supportsInterface(bytes4 interfaceId) public view override(ERC1155, AccessControl) returns (bool) {
        return super.supportsInterface(interfaceId);
    }
}
