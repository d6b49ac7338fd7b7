// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {MessageHashUtils} from "@openzeppelin/contracts/utils/cryptography/MessageHashUtils.sol";
import {DataAnchoringToken} from "./DataAnchoringToken.sol";

/// @title Data registry (LazAI-compatible surface)
/// @notice addFile(url, hash) -> addProof(fileId, Proof) -> requestReward(fileId, proofIndex).
/// A proof is an EIP-191 personal-sign signature by an allow-listed verifier over
/// keccak256(abi.encode(ProofData{id, score, fileUrl, proofUrl})), the layout of LazAI's
/// IDataRegistry. requestReward mints the file's DAT class (integrity hash = the file's hash)
/// to the file owner, once per file. getFile's FileResponse and the FileAdded / ProofAdded /
/// RewardRequested events have LazAI's exact layouts (alith's IDataRegistry), so a LazAI
/// client decodes them; what LazAI has no field for is in getFileInfo, ProofVerified and
/// RewardMinted. See contracts/README.md for what matches and what does not.
contract DataRegistry is AccessControl {
    bytes32 public constant VERIFIER_ROLE = keccak256("VERIFIER_ROLE");

    struct ProofData {
        uint256 id;
        uint256 score;
        string fileUrl;
        string proofUrl;
    }

    struct Proof {
        bytes signature;
        ProofData data;
    }

    /// LazAI's FileResponse: proofIndex is the proof that was rewarded and rewardAmount the
    /// units minted, both 0 until requestReward.
    struct FileResponse {
        uint256 id;
        address ownerAddress;
        string url;
        string hash;
        uint256 proofIndex;
        uint256 rewardAmount;
    }

    /// This registry's fuller view of a file (getFileInfo).
    struct FileInfo {
        uint256 id;
        address ownerAddress;
        string url;
        string hash;
        uint256 proofsCount;
        uint256 rewardTokenId;
        uint256 timestamp;
    }

    struct File {
        address ownerAddress;
        string url;
        string hash;
        bytes32 integrityHash;
        uint256 proofsCount;
        uint256 rewardTokenId;
        uint256 timestamp;
        uint256 proofIndex;
        uint256 rewardAmount;
        mapping(uint256 index => Proof) proofs;
        mapping(bytes32 digest => bool) proofSeen;
    }

    /// LazAI's name() and version(): which registry this is.
    string public constant name = "edge-agent DataRegistry";
    DataAnchoringToken public immutable token;
    uint256 public rewardUnits;
    string public policyURI;
    uint256 public filesCount;
    mapping(uint256 fileId => File) private _files;
    mapping(bytes32 urlHash => uint256 fileId) private _fileIdByUrl;
    mapping(bytes32 integrityHash => uint256 fileId) public fileIdByHash;

    // LazAI's events, same signatures (topic 0) and indexing.
    event FileAdded(uint256 indexed fileId, address indexed ownerAddress, string url);
    event ProofAdded(uint256 indexed fileId, address indexed ownerAddress, uint256 proofIndex, string proofUrl);
    event RewardRequested(
        address indexed contributorAddress, uint256 indexed fileId, uint256 indexed proofIndex, uint256 rewardAmount
    );
    // What LazAI's events do not carry: the proof's signer and score, the DAT class minted.
    event ProofVerified(uint256 indexed fileId, uint256 proofIndex, address indexed verifier, uint256 score);
    event RewardMinted(uint256 indexed fileId, uint256 indexed tokenId, address indexed ownerAddress, uint256 units);
    event RewardParamsChanged(uint256 rewardUnits, string policyURI);

    error UrlAlreadyUsed(string url, uint256 fileId);
    error HashAlreadyUsed(bytes32 integrityHash, uint256 fileId);
    error InvalidHash(string hash);
    error FileNotFound(uint256 fileId);
    error ProofMismatch(uint256 fileId);
    error InvalidVerifier(address signer);
    error ProofAlreadyAdded(uint256 fileId);
    error ProofNotFound(uint256 fileId, uint256 proofIndex);
    error AlreadyRewarded(uint256 fileId, uint256 tokenId);

    constructor(address admin, DataAnchoringToken token_, uint256 rewardUnits_, string memory policyURI_) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        token = token_;
        rewardUnits = rewardUnits_;
        policyURI = policyURI_;
    }

    function version() external pure returns (uint256) {
        return 1;
    }

    function setRewardParams(uint256 rewardUnits_, string calldata policyURI_) external onlyRole(DEFAULT_ADMIN_ROLE) {
        rewardUnits = rewardUnits_;
        policyURI = policyURI_;
        emit RewardParamsChanged(rewardUnits_, policyURI_);
    }

    /// @notice Register a file. `hash` is the dataset root as "0x" + 64 hex digits; URLs and
    /// hashes are unique.
    function addFile(string calldata url, string calldata hash) external returns (uint256 fileId) {
        bytes32 urlKey = keccak256(bytes(url));
        uint256 existing = _fileIdByUrl[urlKey];
        if (existing != 0) revert UrlAlreadyUsed(url, existing);
        bytes32 integrity = _parseHash(hash);
        existing = fileIdByHash[integrity];
        if (existing != 0) revert HashAlreadyUsed(integrity, existing);
        fileId = ++filesCount;
        File storage f = _files[fileId];
        f.ownerAddress = msg.sender;
        f.url = url;
        f.hash = hash;
        f.integrityHash = integrity;
        f.timestamp = block.timestamp;
        _fileIdByUrl[urlKey] = fileId;
        fileIdByHash[integrity] = fileId;
        emit FileAdded(fileId, msg.sender, url);
    }

    /// @notice Attach a verifier's signed proof to a file. Returns the 1-based proof index.
    function addProof(uint256 fileId, Proof calldata proof) external returns (uint256 proofIndex) {
        File storage f = _file(fileId);
        if (proof.data.id != fileId || keccak256(bytes(proof.data.fileUrl)) != keccak256(bytes(f.url))) {
            revert ProofMismatch(fileId);
        }
        bytes32 digest = MessageHashUtils.toEthSignedMessageHash(keccak256(abi.encode(proof.data)));
        (address signer, ECDSA.RecoverError err,) = ECDSA.tryRecover(digest, proof.signature);
        if (err != ECDSA.RecoverError.NoError || !hasRole(VERIFIER_ROLE, signer)) revert InvalidVerifier(signer);
        if (f.proofSeen[digest]) revert ProofAlreadyAdded(fileId);
        f.proofSeen[digest] = true;
        proofIndex = ++f.proofsCount;
        f.proofs[proofIndex] = proof;
        emit ProofAdded(fileId, f.ownerAddress, proofIndex, proof.data.proofUrl);
        emit ProofVerified(fileId, proofIndex, signer, proof.data.score);
    }

    /// @notice Mint the file's DAT to its owner. Once per file; anyone may call.
    function requestReward(uint256 fileId, uint256 proofIndex) external returns (uint256 tokenId) {
        File storage f = _file(fileId);
        if (f.rewardTokenId != 0) revert AlreadyRewarded(fileId, f.rewardTokenId);
        if (proofIndex == 0 || proofIndex > f.proofsCount) revert ProofNotFound(fileId, proofIndex);
        // The id is known only after the call; a reentrant second call (the owner's
        // onERC1155Received) still cannot mint twice: the token refuses a second class with
        // the same integrity hash.
        tokenId = token.mintClass(f.ownerAddress, rewardUnits, f.url, f.integrityHash, policyURI, f.ownerAddress, true);
        f.rewardTokenId = tokenId;
        f.proofIndex = proofIndex;
        f.rewardAmount = rewardUnits;
        emit RewardRequested(f.ownerAddress, fileId, proofIndex, rewardUnits);
        emit RewardMinted(fileId, tokenId, f.ownerAddress, rewardUnits);
    }

    /// LazAI's view of a file.
    function getFile(uint256 fileId) external view returns (FileResponse memory) {
        File storage f = _file(fileId);
        return FileResponse(fileId, f.ownerAddress, f.url, f.hash, f.proofIndex, f.rewardAmount);
    }

    /// This registry's fuller view: proofs added so far, the DAT class minted, registration time.
    function getFileInfo(uint256 fileId) external view returns (FileInfo memory) {
        File storage f = _file(fileId);
        return FileInfo(fileId, f.ownerAddress, f.url, f.hash, f.proofsCount, f.rewardTokenId, f.timestamp);
    }

    function getFileIdByUrl(string calldata url) external view returns (uint256) {
        return _fileIdByUrl[keccak256(bytes(url))];
    }

    function getFileProof(uint256 fileId, uint256 index) external view returns (Proof memory) {
        File storage f = _file(fileId);
        if (index == 0 || index > f.proofsCount) revert ProofNotFound(fileId, index);
        return f.proofs[index];
    }

    function _file(uint256 fileId) private view returns (File storage f) {
        if (fileId == 0 || fileId > filesCount) revert FileNotFound(fileId);
        f = _files[fileId];
    }

    /// "0x" followed by exactly 64 hex digits (either case), not all zero.
    function _parseHash(string calldata hash) private pure returns (bytes32 out) {
        bytes calldata s = bytes(hash);
        if (s.length != 66 || s[0] != "0" || (s[1] != "x" && s[1] != "X")) revert InvalidHash(hash);
        uint256 v;
        for (uint256 i = 2; i < 66; i++) {
            uint8 c = uint8(s[i]);
            uint8 d;
            if (c >= 48 && c <= 57) d = c - 48;
            else if (c >= 97 && c <= 102) d = c - 87;
            else if (c >= 65 && c <= 70) d = c - 55;
            else revert InvalidHash(hash);
            v = (v << 4) | d;
        }
        if (v == 0) revert InvalidHash(hash);
        out = bytes32(v);
    }
}
