package io.moemesh.expert.config;

import io.moemesh.expert.assignment.AssignmentManager;
import io.moemesh.expert.assignment.LoadResult;
import io.moemesh.expert.backend.ExpertModel;
import io.moemesh.model.engine.ExpertKey;
import io.moemesh.proto.router.v1.Placement;
import io.moemesh.service.placement.PlacementFiles;
import io.moemesh.service.placement.PlacementTable;
import java.nio.file.Path;
import java.util.List;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Loads this instance's experts from a placement file at startup, at the file's epoch. */
final class StartupPlacement {
    private static final Logger log = LoggerFactory.getLogger(StartupPlacement.class);

    private StartupPlacement() {
    }

    static void load(Path file, String instanceId, ExpertModel model, AssignmentManager manager) {
        Placement p = PlacementFiles.read(file);
        PlacementTable table = PlacementTable.of(p, model.numLayers(), model.dispatchableExperts());
        if (table.instanceIndex(instanceId) < 0) {
            throw new IllegalArgumentException(file + ": instance " + instanceId + " is not in placement epoch "
                    + p.getEpoch() + " (instances: " + p.getInstancesList().stream().map(i -> i.getId()).toList() + ")");
        }
        List<ExpertKey> keys = table.assignedTo(instanceId).stream().map(le -> new ExpertKey(le[0], le[1])).toList();
        LoadResult r = manager.load(instanceId, p.getEpoch(), keys);
        log.info("{}: placement file {} epoch {}: {} experts assigned, {} resident ({} bytes)", instanceId, file,
                r.epoch(), keys.size(), r.loadedCount(), r.residentBytes());
    }
}
