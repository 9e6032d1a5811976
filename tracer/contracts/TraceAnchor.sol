// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title TraceAnchor: the insitu tracer's Merkle roots, one per batch of traces.
/// @notice Batches form a hash-linked, gap-free chain: batch n covers the trace
///         sequence numbers [firstSeq, lastSeq], starts right after batch n-1
///         and names batch n-1's root as its previous root. Only the account
///         that deployed the contract (the tracer's) may anchor.
contract TraceAnchor {
    string public constant NAME = "insitu.TraceAnchor/1";

    address public owner;
    bytes32 public lastRoot;
    uint64 public nextSeq = 1;
    uint64 public batchCount;

    event Anchored(
        uint64 indexed batch,
        uint64 indexed firstSeq,
        uint64 lastSeq,
        bytes32 root,
        bytes32 previousRoot
    );

    error NotOwner(address caller);
    error Gap(uint64 expectedFirstSeq, uint64 firstSeq);
    error BadRange(uint64 firstSeq, uint64 lastSeq);
    error WrongPreviousRoot(bytes32 expected, bytes32 given);
    error EmptyRoot();

    constructor() {
        owner = msg.sender;
    }

    function anchor(bytes32 root, uint64 firstSeq, uint64 lastSeq, bytes32 previousRoot) external {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        if (firstSeq != nextSeq) revert Gap(nextSeq, firstSeq);
        if (lastSeq < firstSeq) revert BadRange(firstSeq, lastSeq);
        if (previousRoot != lastRoot) revert WrongPreviousRoot(lastRoot, previousRoot);
        if (root == bytes32(0)) revert EmptyRoot();
        emit Anchored(batchCount, firstSeq, lastSeq, root, previousRoot);
        lastRoot = root;
        nextSeq = lastSeq + 1;
        batchCount += 1;
    }
}
