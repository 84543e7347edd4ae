package io.moemesh.expert.config;

import io.moemesh.expert.assignment.AssignmentManager;
import io.moemesh.expert.assignment.LoadResult;
import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.service.placement.PlacementFiles;
import io.moemesh.service.placement.PlacementTable;
import io.moemesh.service.settings.SettingRefusedException;
import java.nio.file.Path;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Loads this instance's experts from a placement file at startup, at the file's epoch. A file that is not a placement
 * of this model naming this instance (a file without an epoch is not: expert-service README, placement-file) is a
 * refused setting: the startup fails naming the setting and the file.
 */
final class StartupPlacement {
    private static final Logger log = LoggerFactory.getLogger(StartupPlacement.class);
    private static final String SETTING = "moemesh.expert.placement-file";

    private StartupPlacement() {
    }

    /** @throws SettingRefusedException naming {@value #SETTING} and the file when it cannot be this one's placement */
    static void load(Path file, String instanceId, ExpertModel model, AssignmentManager manager) {
        Placement p;
        try {
            p = PlacementFiles.read(file);
        } catch (IllegalArgumentException e) {
            // Its message names the file.
            throw new SettingRefusedException(SETTING, SETTING + ": " + e.getMessage(), e);
        }
        PlacementTable table;
        try {
            table = PlacementTable.of(p, model.numLayers(), model.dispatchableExperts());
        } catch (IllegalArgumentException e) {
            throw new SettingRefusedException(SETTING, SETTING + " " + file + ": " + e.getMessage(), e);
        }
        if (table.instanceIndex(instanceId) < 0) {
            throw new SettingRefusedException(SETTING, file + ": instance " + instanceId + " is not in placement epoch "
                    + p.getEpoch() + " (instances: " + p.getInstancesList().stream().map(i -> i.getId()).toList() + ")");
        }
        List<ExpertKey> keys = table.assignedTo(instanceId).stream().map(le -> new ExpertKey(le[0], le[1])).toList();
        LoadResult r = manager.load(instanceId, p.getEpoch(), keys);
        log.info("{}: placement file {} epoch {}: {} experts assigned, {} resident ({} bytes)", instanceId, file,
                r.epoch(), keys.size(), r.loadedCount(), r.residentBytes());
    }
}
