-- baoxue migration 0025: bx-console reads the students' risk flags again. Migration 0020 left them
-- out of its student_private columns, but bx-console explains a class's risk scores with bx-score's
-- library (the class page's reasons, as `bxctl student show` has them), which loads every
-- student's profile: registry.student_private's student_id, flags and birth_date
-- (score_profiles_load in services/bx-score/recompute.c). Still not national_id or the student
-- number (0023).
GRANT SELECT (flags) ON registry.student_private TO bx_console;
