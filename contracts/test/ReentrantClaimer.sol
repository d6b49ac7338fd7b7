// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {ERC1155Holder} from "@openzeppelin/contracts/token/ERC1155/utils/ERC1155Holder.sol";
import {DataAnchoringToken} from "../src/DataAnchoringToken.sol";

/// Test only: a holder whose ETH receiver re-enters `claim`. The reentry must fail (and is
/// caught here so the outer claim completes): the attacker is paid its share exactly once.
contract ReentrantClaimer is ERC1155Holder {
    DataAnchoringToken public immutable dat;
    uint256 public id;
    uint256 public reentryAttempts;
    uint256 public reentrySucceeded;
    uint256 public received;

    constructor(DataAnchoringToken dat_) {
        dat = dat_;
    }

    function attack(uint256 id_) external returns (uint256) {
        id = id_;
        return dat.claim(id_, address(0));
    }

    function useQuota(uint256 id_, uint256 units) external {
        dat.recordUsage(id_, units, "attack");
    }

    receive() external payable {
        received += msg.value;
        if (reentryAttempts < 3) {
            reentryAttempts += 1;
            try dat.claim(id, address(0)) returns (uint256 again) {
                if (again > 0) reentrySucceeded += 1;
            } catch {}
        }
    }
}
