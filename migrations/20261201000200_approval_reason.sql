-- Why policy held the job (shown on the approval card and kept with the decision).
ALTER TABLE approvals ADD COLUMN reason text;
